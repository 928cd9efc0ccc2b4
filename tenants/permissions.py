"""Tenancy and roles in one place.

Every API view that touches tenant data derives from `OrgAPIView`: it resolves the
organisation once (the user's own, the API key's, or `?org_id=` for platform staff) and
checks the role required for the HTTP method. Query and service functions then take that
organisation as a required argument, so a view cannot forget the filter.
"""

from rest_framework import permissions
from rest_framework.views import APIView

from core.cors import request_origin
from core.exceptions import DomainError, Forbidden, NotFound, PayloadTooLarge
from core.strict_query import StrictQueryMixin

from .authentication import ApiKeyAuthentication, ApiKeyPrincipal, UserJWTAuthentication
from .models import Organization, Role


def _role_message(role):
    return {
        Role.ADMIN: "This action needs the admin role in your organisation.",
        Role.ANALYST: "This action needs the analyst or admin role in your organisation.",
        Role.MEMBER: "This action needs a member account in an organisation.",
    }[role]


class HasRole(permissions.BasePermission):
    """Allows users whose role is at least `view.required_role(method)`; superusers always."""

    # Read by core.openapi: this permission refuses by the view's role map (403).
    checks_view_role = True

    def has_permission(self, request, view):
        user = request.user
        if not user or not user.is_authenticated:
            return False
        role = view.required_role(request.method)
        if role is None:
            return True
        if user.is_superuser:
            return True
        if isinstance(user, ApiKeyPrincipal):
            self.message = "API keys can only send events; log in as a user for this endpoint."
            return False
        if user.organization_id is None:
            self.message = "Your account does not belong to an organisation."
            return False
        if not user.has_role(role):
            self.message = _role_message(role)
            return False
        return True


def organization_for(request):
    """The organisation a request acts on. Staff pick one with `?org_id=` (or `org_id` in the
    body); anyone else always gets their own, whatever they pass."""
    user = request.user
    if isinstance(user, ApiKeyPrincipal):
        return user.organization
    if user.is_superuser:
        org_id = request.query_params.get("org_id")
        if org_id is None and isinstance(getattr(request, "data", None), dict):
            org_id = request.data.get("org_id")
        if org_id in (None, ""):
            if user.organization_id:
                return user.organization
            raise DomainError(
                "Platform staff must choose an organisation with ?org_id=.",
                errors={"org_id": ["This field is required for staff accounts."]},
            )
        try:
            # One being deleted is no longer there for anyone (tenants.org_deletion).
            return Organization.objects.in_service().get(pk=int(org_id))
        except (TypeError, ValueError):
            raise DomainError("org_id must be an integer.", errors={"org_id": ["A valid integer is required."]})
        except Organization.DoesNotExist:
            raise NotFound("Organisation not found.")
    return user.organization


class OrgAPIView(StrictQueryMixin, APIView):
    """Base for every tenant-scoped endpoint.

    Set `roles = {"GET": Role.ANALYST, "POST": Role.ADMIN}` (or `default_role`). Use
    `self.org` in handlers; never query models by id without it. A handler takes the query
    parameters its `strict_schema`/`list_schema` declares and answers 400 to any other.
    """

    authentication_classes = [UserJWTAuthentication]
    permission_classes = [HasRole]
    # Read by core.openapi: staff's `?org_id=` may name an organisation that is not there (404).
    tenant_scoped = True
    default_role: Role | None = Role.ANALYST
    roles: dict = {}
    # DRF's JSON parser reads the whole stream and bypasses Django's upload limit, so
    # settings-style endpoints refuse big bodies up front (None: the subclass checks itself).
    max_body_bytes: int | None = 1024 * 1024

    def required_role(self, method):
        return self.roles.get(method, self.default_role)

    def initial(self, request, *args, **kwargs):
        if self.max_body_bytes is not None:
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > self.max_body_bytes:
                raise PayloadTooLarge(f"The request body is larger than {self.max_body_bytes // 1024} KB.")
        super().initial(request, *args, **kwargs)
        self.org = organization_for(request)


class IngestAPIView(OrgAPIView):
    """Endpoints that SDKs call with an API key; a logged-in member may call them too."""

    authentication_classes = [ApiKeyAuthentication, UserJWTAuthentication]
    default_role = None
    # The SDKs add query parameters of their own (`?ver=`, `?_=`, `?compression=`).
    strict_query = False
    # Event batches are bigger; the ingestion views enforce INGEST_MAX_BODY_BYTES themselves.
    max_body_bytes = None

    def required_role(self, method):
        return None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # A key says which web origins may use it (checked when it authenticates); a person's
        # token says nothing of the kind, so a page on another origin cannot send with one.
        if not isinstance(request.user, ApiKeyPrincipal) and request_origin(request) is not None:
            raise Forbidden(
                "Browsers on another origin send events with an ingestion key that lists the origin.",
                errors={"origin": ["Use an API key whose allowed origins include this page's origin."]},
            )
