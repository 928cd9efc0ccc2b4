"""Reads for the organisation settings: each takes the organisation first, so nothing can be
listed across tenants."""

from django.db.models import QuerySet

from .models import ApiKey, Invitation, Organization, User


def members_list(*, org: Organization) -> QuerySet[User]:
    return User.objects.filter(organization=org).order_by("email")


def invitations_list(*, org: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=org).select_related("invited_by").order_by("-created_at", "-id")


def api_keys_list(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=org).select_related("created_by").order_by("-created_at", "-id")
