"""Input validation and output shapes of the tenants API. No logic: views pass the validated
data to `tenants.services` and render what it returns with the output serializers."""

from rest_framework import serializers

from core.cors import MAX_ORIGIN_LENGTH

from .models import ApiKey, Invitation, Organization, Role, User
from .origins import MAX_ALLOWED_ORIGINS

# Generous bounds that still stop a megabyte "password" before it reaches argon2.
PASSWORD_MAX_LENGTH = 128


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers and booleans instead of quietly turning them into
    strings: `{"email": 42}` is a client bug the client should hear about."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictEmailField(serializers.EmailField):
    default_error_messages = {"invalid": "Enter a valid e-mail address."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data).strip().lower()


class StrictBooleanField(serializers.BooleanField):
    """JSON `true`/`false` only (form bodies may still send the usual strings)."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data):
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


def _password_field():
    return StrictCharField(
        write_only=True, max_length=PASSWORD_MAX_LENGTH, trim_whitespace=False, style={"input_type": "password"}
    )


# --- Output -------------------------------------------------------------------------------


class OrganizationBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug"]


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "plan_type", "auto_create_features", "alert_threshold", "created_at"]


class MeSerializer(serializers.ModelSerializer):
    organization = OrganizationBriefSerializer(allow_null=True)

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "is_superuser", "organization"]


class MemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "is_active", "created_at", "last_login"]


class InvitationSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()
    invited_by = serializers.EmailField(source="invited_by.email", default=None, read_only=True)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "invited_by", "created_at", "expires_at", "accepted_at"]

    def get_status(self, invitation) -> str:
        return invitation.status


class InvitationCreatedSerializer(InvitationSerializer):
    """The only response that carries the token: it is stored hashed and never shown again."""

    token = serializers.CharField()
    accept_url = serializers.CharField(allow_null=True)

    class Meta(InvitationSerializer.Meta):
        fields = [*InvitationSerializer.Meta.fields, "token", "accept_url"]


class ApiKeySerializer(serializers.ModelSerializer):
    created_by = serializers.EmailField(source="created_by.email", default=None, read_only=True)
    is_active = serializers.BooleanField(read_only=True)
    allowed_origins = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Web origins whose pages may send with this key; empty: server-side only.",
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "is_active",
            "allowed_origins",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]


class ApiKeyCreatedSerializer(ApiKeySerializer):
    """The only response that carries the full key."""

    key = serializers.CharField()

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class TokenPairSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField(default="bearer")
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class SessionSerializer(TokenPairSerializer):
    """Register and accept-invite: who you are now, and your tokens."""

    user = MeSerializer()
    organization = OrganizationSerializer()


# --- Input --------------------------------------------------------------------------------


class RegisterSerializer(serializers.Serializer):
    email = StrictEmailField(max_length=254)
    password = _password_field()
    organization_name = StrictCharField(max_length=200)
    full_name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")

    # Registration always founds a NEW organisation with the registrant as admin; a body
    # that tries to pick an organisation or a role is refused with a reason (core.api's
    # `validated`), so a client expecting to join an existing organisation learns it needs an
    # invitation.
    BODY_REFUSED = {
        "org_id": "Registration always creates a new organisation; joining one needs an invitation.",
        "organization_id": "Registration always creates a new organisation; joining one needs an invitation.",
        "organization": "Registration always creates a new organisation; send organization_name.",
        "role": "The registrant is always the admin of the new organisation; roles are given by invitation.",
        "is_staff": "Not allowed.",
        "is_superuser": "Not allowed.",
    }

    def validate(self, attrs):
        if not attrs["organization_name"].strip():
            raise serializers.ValidationError({"organization_name": ["This field may not be blank."]})
        return attrs


class LoginSerializer(serializers.Serializer):
    """OAuth2 password-grant field names: `username` is the e-mail (`email` is accepted too).
    The grant's other fields are taken and not needed: there is one client, and no scopes."""

    BODY_IGNORED = ("grant_type", "scope", "client_id", "client_secret")

    username = StrictCharField(max_length=254, required=False)
    email = StrictCharField(max_length=254, required=False, write_only=True)
    password = _password_field()

    def validate(self, attrs):
        username = (attrs.get("username") or attrs.get("email") or "").strip()
        if not username:
            raise serializers.ValidationError({"username": ["This field is required (your e-mail address)."]})
        attrs["username"] = username
        return attrs


class RefreshSerializer(serializers.Serializer):
    """`{refresh}` as simplejwt clients send it, or `{refresh_token}` as login returns it."""

    refresh = StrictCharField(required=False, max_length=4096)
    refresh_token = StrictCharField(required=False, max_length=4096)

    def validate(self, attrs):
        token = attrs.get("refresh") or attrs.get("refresh_token")
        if not token:
            raise serializers.ValidationError({"refresh": ["This field is required."]})
        return {"refresh": token}


class AcceptInviteSerializer(serializers.Serializer):
    token = StrictCharField(max_length=200)
    password = _password_field()
    full_name = StrictCharField(max_length=200, required=False, allow_blank=True, default="")


class OrganizationUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    slug = serializers.SlugField(max_length=80, required=False)
    plan_type = serializers.ChoiceField(choices=Organization.Plan.choices, required=False)
    auto_create_features = StrictBooleanField(required=False)
    alert_threshold = StrictFloatField(required=False, min_value=0.5, max_value=100.0)

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value.strip()

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError(
                {"non_field_errors": ["Send at least one of: " + ", ".join(self.fields) + "."]}
            )
        return attrs


class MemberRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationCreateSerializer(serializers.Serializer):
    email = StrictEmailField(max_length=254)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


def _allowed_origins_field(**kwargs):
    return serializers.ListField(
        child=StrictCharField(max_length=MAX_ORIGIN_LENGTH),
        max_length=MAX_ALLOWED_ORIGINS,
        help_text=(
            "Web origins (`scheme://host[:port]`, no path, no wildcard) whose pages may send events with "
            "the key from a browser (CORS). Empty: server-side only, browser requests are refused (403)."
        ),
        **kwargs,
    )


class ApiKeyCreateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=100)
    allowed_origins = _allowed_origins_field(required=False, default=list)

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value.strip()


class ApiKeyUpdateSerializer(serializers.Serializer):
    allowed_origins = _allowed_origins_field()

    # What a key's GET shows but a PATCH cannot change, with the way to do it (core.api).
    BODY_REFUSED = {
        "is_active": "A key is revoked with DELETE on it; a revoked key cannot be made active again.",
        "name": "A key's name is fixed; create a new key to name it otherwise.",
    }
