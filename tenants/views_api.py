"""Auth, organisation, members, invitations and API keys. One thin view per resource:
validate with a serializer, call one service or query, render the result."""

from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from core.api import declared_length, list_schema, no_content, validated
from core.client_address import address_bucket, client_address
from core.exceptions import Forbidden, PayloadTooLarge
from core.openapi import ERROR
from core.pagination import paginate
from core.parsers import JSONParser
from core.rate_limit import WindowRateThrottle

from . import queries, services
from . import serializers as s
from .authentication import UserJWTAuthentication
from .models import Role
from .permissions import OrgAPIView

# Auth bodies are a few hundred bytes; anything near this is an attack or a mistake and is
# refused before it is parsed or a password is hashed.
AUTH_MAX_BODY_BYTES = 16 * 1024


class AuthThrottle(WindowRateThrottle):
    """The `auth` rate of REST_FRAMEWORK's rates per client address (X-Forwarded-For only from
    TRUSTED_PROXIES), read per request (DRF reads its rates once at import), so a changed
    AUTH_THROTTLE_RATE or a test's settings override takes effect."""

    scope = "auth"
    what = "auth throttle off (requests pass uncounted)"

    def rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def ident(self, request):
        return address_bucket(client_address(request))


class PublicAuthView(APIView):
    """Endpoints reached without an access token: the body carries the credential. They take
    form bodies as well as JSON, as OAuth2-style clients and plain HTML forms send them (the
    rest of the API is JSON only: DRF reads an empty optional form field as "not given",
    which a JSON schema cannot describe)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, FormParser]

    def initial(self, request, *args, **kwargs):
        if declared_length(request) > AUTH_MAX_BODY_BYTES:
            raise PayloadTooLarge(f"The request body is larger than {AUTH_MAX_BODY_BYTES // 1024} KB.")
        super().initial(request, *args, **kwargs)


# Public endpoints that create an account or check a password get the `auth` rate limit. (A
# comment, not a docstring: drf-spectacular would publish a docstring as their description.)
class ThrottledAuthView(PublicAuthView):
    throttle_classes = [AuthThrottle]


def _session(user):
    return {
        "user": s.MeSerializer(user).data,
        "organization": s.OrganizationSerializer(user.organization).data,
        **services.auth_tokens_issue(user=user),
    }


class RegisterView(ThrottledAuthView):
    @extend_schema(
        request=s.RegisterSerializer,
        responses={201: s.SessionSerializer, 400: ERROR, 413: ERROR, 429: ERROR},
        summary="Create a new organisation with yourself as its admin",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(s.RegisterSerializer, request)
        user = services.organization_register(**data)
        return Response(_session(user), status=status.HTTP_201_CREATED)


class LoginView(ThrottledAuthView):
    # OAuth2 password clients post urlencoded forms; `curl -F` posts multipart.
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request={
            "application/json": s.LoginSerializer,
            "application/x-www-form-urlencoded": s.LoginSerializer,
            "multipart/form-data": s.LoginSerializer,
        },
        responses={200: s.TokenPairSerializer, 400: ERROR, 401: ERROR, 413: ERROR, 429: ERROR},
        summary="Exchange e-mail and password for a token pair (JSON or OAuth2 form body)",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(s.LoginSerializer, request)
        user = services.auth_login(username=data["username"], password=data["password"], request=request._request)
        return Response(services.auth_tokens_issue(user=user))


class RefreshView(PublicAuthView):
    @extend_schema(
        request=s.RefreshSerializer,
        responses={200: s.TokenPairSerializer, 400: ERROR, 401: ERROR},
        summary="Spend a refresh token for a new pair (rotation)",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(s.RefreshSerializer, request)
        return Response(services.auth_tokens_refresh(refresh=data["refresh"]))


class LogoutView(PublicAuthView):
    @extend_schema(
        request=s.RefreshSerializer,
        responses={204: None, 400: ERROR, 401: ERROR},
        summary="Blacklist a refresh token",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(s.RefreshSerializer, request)
        services.auth_tokens_revoke(refresh=data["refresh"])
        return no_content()


class AcceptInviteView(ThrottledAuthView):
    @extend_schema(
        request=s.AcceptInviteSerializer,
        responses={201: s.SessionSerializer, 400: ERROR, 404: ERROR, 429: ERROR},
        summary="Join the inviting organisation with the invited role",
        tags=["auth"],
    )
    def post(self, request):
        data = validated(s.AcceptInviteSerializer, request)
        user = services.invitation_accept(**data)
        return Response(_session(user), status=status.HTTP_201_CREATED)


class MeView(APIView):
    authentication_classes = [UserJWTAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: s.MeSerializer, 401: ERROR}, summary="The logged-in user", tags=["auth"])
    def get(self, request):
        return Response(s.MeSerializer(request.user).data)


# --- Organisation ------------------------------------------------------------------------------


class OrganizationView(OrgAPIView):
    roles = {"GET": Role.ANALYST, "PATCH": Role.ADMIN}

    @extend_schema(responses={200: s.OrganizationSerializer, 403: ERROR}, tags=["organisation"])
    def get(self, request):
        return Response(s.OrganizationSerializer(self.org).data)

    @extend_schema(
        request=s.OrganizationUpdateSerializer,
        responses={200: s.OrganizationSerializer, 400: ERROR, 403: ERROR},
        summary="Change the organisation's settings (the plan: platform staff only)",
        tags=["organisation"],
    )
    def patch(self, request):
        data = validated(s.OrganizationUpdateSerializer, request)
        if "plan_type" in data and not request.user.is_superuser:
            raise Forbidden(
                "The plan is changed by platform staff.", errors={"plan_type": ["Only platform staff can change it."]}
            )
        org = services.organization_update(org=self.org, **data)
        return Response(s.OrganizationSerializer(org).data)


def _accept_url(request, token):
    """The sign-up page for this invitation when the pages app provides one."""
    try:
        return request.build_absolute_uri(reverse("invitation-accept", kwargs={"token": token}))
    except NoReverseMatch:
        return None


def _invite_schema(summary):
    return extend_schema(
        request=s.InvitationCreateSerializer,
        responses={201: s.InvitationCreatedSerializer, 400: ERROR, 403: ERROR},
        summary=summary,
        tags=["organisation"],
    )


def _invite(view, request):
    data = validated(s.InvitationCreateSerializer, request)
    invitation, token, accept_url = services.invitation_send(
        org=view.org,
        email=data["email"],
        role=data["role"],
        invited_by=request.user,
        accept_url_for=lambda token: _accept_url(request, token),
    )
    invitation.token = token
    invitation.accept_url = accept_url
    return Response(s.InvitationCreatedSerializer(invitation).data, status=status.HTTP_201_CREATED)


class MemberListView(OrgAPIView):
    default_role = Role.ADMIN

    @list_schema(s.MemberSerializer, operation_id="org_members_list", tags=["organisation"])
    def get(self, request):
        return paginate(request, queries.members_list(org=self.org), s.MemberSerializer, view=self)

    @_invite_schema("Invite a member (same as POST /org/invitations: joining always goes through an invitation)")
    def post(self, request):
        return _invite(self, request)


class MemberDetailView(OrgAPIView):
    default_role = Role.ADMIN

    @extend_schema(responses={200: s.MemberSerializer, 404: ERROR}, tags=["organisation"])
    def get(self, request, member_id):
        return Response(s.MemberSerializer(services.member_get(org=self.org, user_id=member_id)).data)

    @extend_schema(
        request=s.MemberRoleSerializer,
        responses={200: s.MemberSerializer, 400: ERROR, 404: ERROR},
        summary="Change a member's role (the last admin cannot be demoted)",
        tags=["organisation"],
    )
    def patch(self, request, member_id):
        # The member is looked up before the body is validated so that another
        # organisation's id answers 404 whatever the body says.
        services.member_get(org=self.org, user_id=member_id)
        data = validated(s.MemberRoleSerializer, request)
        member = services.member_change_role(org=self.org, user_id=member_id, role=data["role"])
        return Response(s.MemberSerializer(member).data)

    @extend_schema(
        responses={204: None, 400: ERROR, 404: ERROR},
        summary="Remove a member (the last admin cannot be removed)",
        tags=["organisation"],
    )
    def delete(self, request, member_id):
        services.member_remove(org=self.org, user_id=member_id)
        return no_content()


class InvitationListView(OrgAPIView):
    default_role = Role.ADMIN

    @list_schema(s.InvitationSerializer, operation_id="org_invitations_list", tags=["organisation"])
    def get(self, request):
        return paginate(request, queries.invitations_list(org=self.org), s.InvitationSerializer, view=self)

    @_invite_schema("Invite someone by e-mail; the token is shown only in this response")
    def post(self, request):
        return _invite(self, request)


class InvitationDetailView(OrgAPIView):
    default_role = Role.ADMIN

    @extend_schema(responses={204: None, 404: ERROR}, summary="Withdraw an invitation", tags=["organisation"])
    def delete(self, request, invitation_id):
        services.invitation_revoke(org=self.org, invitation_id=invitation_id)
        return no_content()


class ApiKeyListView(OrgAPIView):
    default_role = Role.ADMIN

    @list_schema(s.ApiKeySerializer, operation_id="org_api_keys_list", tags=["organisation"])
    def get(self, request):
        return paginate(request, queries.api_keys_list(org=self.org), s.ApiKeySerializer, view=self)

    @extend_schema(
        request=s.ApiKeyCreateSerializer,
        responses={201: s.ApiKeyCreatedSerializer, 400: ERROR, 403: ERROR},
        summary="Create an ingestion key; the full key is shown only in this response",
        tags=["organisation"],
    )
    def post(self, request):
        data = validated(s.ApiKeyCreateSerializer, request)
        api_key, raw = services.api_key_create(
            org=self.org, name=data["name"], created_by=request.user, allowed_origins=data["allowed_origins"]
        )
        api_key.key = raw
        return Response(s.ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(OrgAPIView):
    default_role = Role.ADMIN

    @extend_schema(
        request=s.ApiKeyUpdateSerializer,
        responses={200: s.ApiKeySerializer, 400: ERROR, 404: ERROR},
        summary="Set the web origins allowed to send with a key from a browser",
        tags=["organisation"],
    )
    def patch(self, request, key_id):
        # Looked up first: another organisation's key is a 404 whatever the body says.
        api_key = services.api_key_get(org=self.org, key_id=key_id)
        data = validated(s.ApiKeyUpdateSerializer, request)
        api_key = services.api_key_origins_set(api_key=api_key, allowed_origins=data["allowed_origins"])
        return Response(s.ApiKeySerializer(api_key).data)

    @extend_schema(responses={204: None, 404: ERROR}, summary="Revoke an ingestion key", tags=["organisation"])
    def delete(self, request, key_id):
        services.api_key_revoke(org=self.org, key_id=key_id)
        return no_content()
