"""Reads for the organisation settings: each takes the organisation first, so nothing can be
listed across tenants."""

import hashlib

from django.db.models import QuerySet

from .models import ApiKey, Invitation, Organization, User


def members_list(*, org: Organization) -> QuerySet[User]:
    return User.objects.filter(organization=org).order_by("email")


def invitations_list(*, org: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=org).select_related("invited_by").order_by("-created_at", "-id")


def api_keys_list(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=org).select_related("created_by").order_by("-created_at", "-id")


def secret_digest(value: str) -> str:
    """How API keys and invitation tokens are stored and looked up: their SHA-256, never
    the secret itself."""
    return hashlib.sha256(value.encode()).hexdigest()


def invitation_for_token(*, token: str) -> Invitation | None:
    """The invitation behind an accept link, with its organisation; None for an unknown token."""
    return Invitation.objects.select_related("organization").filter(token_hash=secret_digest(token)).first()
