"""Authentication classes: JWT for people (with org/role claims) and API keys for SDKs."""

from typing import ClassVar

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication

from core.cors import request_origin
from core.exceptions import Forbidden

from . import services


class ApiKeyPrincipal:
    """`request.user` for a request authenticated by an ingestion key: not a person, so it
    has no role and can only reach views that accept API keys."""

    is_authenticated = True
    is_active = True
    is_superuser = False
    is_staff = False
    is_anonymous = False
    role = None
    pk = None
    id = None

    def __init__(self, api_key):
        self.api_key = api_key
        self.organization = api_key.organization
        self.organization_id = api_key.organization_id

    def has_role(self, role):
        return False

    def __str__(self):
        return f"api-key:{self.api_key.prefix}"


def _raw_key_from(request):
    header = request.META.get("HTTP_X_API_KEY")
    if header:
        return header.strip()
    auth = authentication.get_authorization_header(request).split()
    if len(auth) == 2 and auth[0].lower() == b"bearer":
        token = auth[1].decode("latin-1")
        if token.startswith(services.API_KEY_PREFIX):
            return token
        return None
    # Browsers' sendBeacon cannot set headers: a view that reads its own body may offer the
    # key sent in it (telemetry's ingestion views, `api_key`). Headers win.
    view = request.parser_context.get("view") if request.parser_context else None
    body_key = getattr(view, "body_api_key", None)
    return body_key(request) if body_key is not None else None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer upk_…` or `X-API-Key: upk_…` (or `api_key` in the body where the
    view offers it). Revoked or unknown keys → 401; a browser on an origin the key does not
    list → 403."""

    def authenticate(self, request):
        raw = _raw_key_from(request)
        if raw is None:
            return None
        return self.authenticate_key(request, raw)

    def authenticate_key(self, request, raw):
        """`(principal, key)` for the raw key `raw`, wherever the request carried it: 401 for
        an unknown or revoked key, 403 for a browser on an origin the key does not list."""
        try:
            api_key = services.api_key_authenticate(raw_key=raw, origin=request_origin(request))
        except Forbidden as exc:
            raise exceptions.PermissionDenied({"detail": exc.detail, **exc.errors})
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


INGESTION_KEY_ONLY = (
    "An ingestion key can only send events (events/track, events/batch and the SDK routes); "
    "log in as a person (auth/login) and send that access token for this endpoint."
)


class UserJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication that leaves `Bearer upk_…` to ApiKeyAuthentication and
    loads the user's organisation in the same query. Where it is the only authentication (every
    endpoint but ingestion), an ingestion key alone is a 401 that says what a key is for, not
    "credentials were not provided"."""

    def authenticate(self, request):
        header = self.get_header(request)
        key_only = (header is None and request.META.get("HTTP_X_API_KEY")) or (
            header is not None and self.get_raw_token(header) is None and _raw_key_from(request) is not None
        )
        if key_only and not any(isinstance(a, ApiKeyAuthentication) for a in request.authenticators):
            raise exceptions.AuthenticationFailed(INGESTION_KEY_ONLY)
        return super().authenticate(request)

    def get_raw_token(self, header):
        raw = super().get_raw_token(header)
        if raw is not None and raw.startswith(services.API_KEY_PREFIX.encode()):
            return None
        return raw

    def get_user(self, validated_token):
        from rest_framework_simplejwt.settings import api_settings

        from .models import User

        try:
            user_id = validated_token[api_settings.USER_ID_CLAIM]
        except KeyError:
            raise exceptions.AuthenticationFailed("Token contained no recognisable user identification.")
        user = User.objects.select_related("organization").filter(pk=user_id).first()
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("User not found or inactive.")
        return user


class _ConstantScheme(OpenApiAuthenticationExtension):
    """An OpenAPI security scheme whose definition is fixed (no target: matches nothing itself)."""

    definition: ClassVar[dict] = {}

    def get_security_definition(self, auto_schema):
        return dict(self.definition)


class ApiKeyScheme(_ConstantScheme):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"
    definition: ClassVar[dict] = {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": (
            "Ingestion key `upk_…` (also accepted as `Authorization: Bearer upk_…`, and on the ingestion "
            "endpoints as `api_key` in the JSON body, for browsers' sendBeacon, which cannot set headers)."
        ),
    }


class UserJWTScheme(_ConstantScheme):
    target_class = "tenants.authentication.UserJWTAuthentication"
    name = "JWTAuth"
    definition: ClassVar[dict] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Access token from `/api/v1/auth/login` (15 minutes).",
    }
