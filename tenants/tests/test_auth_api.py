"""Register, login (JSON and form), refresh with rotation, logout, me, and their bad inputs."""

import json
from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from conftest import PASSWORD, client_for, make_org
from tenants.models import Organization, Role, User

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ME = "/api/v1/auth/me"


def register(client, email="founder@newco.example", password=PASSWORD, organization_name="NewCo", **extra):
    return client.post(
        REGISTER, {"email": email, "password": password, "organization_name": organization_name, **extra}, format="json"
    )


def assert_error(response, status, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        assert field in body["errors"], body
    return body


class TestRegister:
    def test_creates_new_organisation_with_registrant_as_admin(self, anon_client):
        response = register(anon_client)
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["access_token"] and body["refresh_token"]
        assert body["user"]["email"] == "founder@newco.example"
        assert body["user"]["role"] == "admin"
        assert body["organization"]["name"] == "NewCo"
        user = User.objects.get(email="founder@newco.example")
        assert user.organization_id == body["organization"]["id"]
        assert user.password.startswith("argon2")

    def test_twice_gives_two_separate_organisations(self, anon_client):
        first = register(anon_client, email="a@one.example", organization_name="Same Name").json()
        second = register(anon_client, email="b@two.example", organization_name="Same Name").json()
        assert first["organization"]["id"] != second["organization"]["id"]
        assert first["organization"]["slug"] != second["organization"]["slug"]
        assert Organization.objects.count() == 2
        # Each admin sees only their own organisation.
        me = APIClient()
        me.credentials(HTTP_AUTHORIZATION=f"Bearer {second['access_token']}")
        assert me.get("/api/v1/org").json()["id"] == second["organization"]["id"]

    def test_access_token_carries_org_role_and_email_claims(self, anon_client):
        body = register(anon_client).json()
        claims = AccessToken(body["access_token"])
        assert claims["org_id"] == body["organization"]["id"]
        assert claims["role"] == "admin"
        assert claims["email"] == "founder@newco.example"

    @pytest.mark.parametrize("field", ["org_id", "role", "organization_id"])
    def test_naming_an_organisation_or_role_is_refused(self, anon_client, org, field):
        value = org.pk if field != "role" else "member"
        response = register(anon_client, **{field: value})
        body = assert_error(response, 400, field)
        assert "invitation" in json.dumps(body).lower() or "admin" in json.dumps(body).lower()
        assert not User.objects.filter(email="founder@newco.example").exists()
        assert Organization.objects.count() == 1

    def test_duplicate_email_is_refused_case_insensitively(self, anon_client):
        assert register(anon_client).status_code == 201
        assert_error(register(anon_client, email="Founder@NewCo.example", organization_name="Other"), 400, "email")
        assert Organization.objects.count() == 1

    @pytest.mark.parametrize("password", ["short", "password123", "12345678901", "founder-newco"])
    def test_weak_password_names_the_field(self, anon_client, password):
        body = assert_error(register(anon_client, password=password), 400, "password")
        assert body["errors"]["password"]
        assert not User.objects.exists()

    @pytest.mark.parametrize("email", ["", "not-an-email", "a@", None])
    def test_missing_or_invalid_email(self, anon_client, email):
        assert_error(register(anon_client, email=email), 400, "email")

    def test_missing_fields(self, anon_client):
        body = assert_error(anon_client.post(REGISTER, {}, format="json"), 400)
        assert {"email", "password", "organization_name"} <= set(body["errors"])

    @pytest.mark.parametrize(
        "payload, field",
        [
            ({"email": 42, "password": PASSWORD, "organization_name": "X"}, "email"),
            ({"email": "x@y.example", "password": 12345678, "organization_name": "X"}, "password"),
            ({"email": "x@y.example", "password": PASSWORD, "organization_name": ["X"]}, "organization_name"),
            ({"email": "x@y.example", "password": PASSWORD, "organization_name": {"a": 1}}, "organization_name"),
            ({"email": True, "password": PASSWORD, "organization_name": "X"}, "email"),
        ],
    )
    def test_wrong_types(self, anon_client, payload, field):
        assert_error(anon_client.post(REGISTER, payload, format="json"), 400, field)

    @pytest.mark.parametrize("body", ["[1, 2]", '"text"', "null", "42"])
    def test_json_that_is_not_an_object(self, anon_client, body):
        assert_error(anon_client.post(REGISTER, body, content_type="application/json"), 400)

    def test_blank_organisation_name(self, anon_client):
        assert_error(register(anon_client, organization_name="   "), 400, "organization_name")


class TestLogin:
    def test_json_body(self, anon_client, admin_user):
        response = anon_client.post(LOGIN, {"username": admin_user.email, "password": PASSWORD}, format="json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 15 * 60
        assert AccessToken(body["access_token"])["user_id"] in (admin_user.pk, str(admin_user.pk))
        admin_user.refresh_from_db()
        assert admin_user.last_login is not None

    def test_form_body_as_oauth2_password_clients_send_it(self, anon_client, admin_user):
        response = anon_client.post(
            LOGIN,
            f"username={admin_user.email}&password={PASSWORD}&grant_type=password",
            content_type="application/x-www-form-urlencoded",
        )
        assert response.status_code == 200, response.content
        assert response.json()["token_type"] == "bearer"

    def test_email_is_case_insensitive_and_accepted_as_email_field(self, anon_client, admin_user):
        response = anon_client.post(LOGIN, {"email": admin_user.email.upper(), "password": PASSWORD}, format="json")
        assert response.status_code == 200, response.content

    def test_wrong_password_and_unknown_user_answer_the_same(self, anon_client, admin_user):
        wrong = assert_error(anon_client.post(LOGIN, {"username": admin_user.email, "password": "nope"}), 401)
        unknown = assert_error(anon_client.post(LOGIN, {"username": "ghost@x.example", "password": "nope"}), 401)
        assert wrong["detail"] == unknown["detail"]

    def test_inactive_user_cannot_log_in(self, anon_client, admin_user):
        admin_user.is_active = False
        admin_user.save(update_fields=["is_active"])
        assert_error(anon_client.post(LOGIN, {"username": admin_user.email, "password": PASSWORD}), 401)

    def test_missing_fields(self, anon_client):
        body = assert_error(anon_client.post(LOGIN, {}, format="json"), 400)
        assert "password" in body["errors"]
        assert_error(anon_client.post(LOGIN, {"password": "x"}, format="json"), 400, "username")

    def test_malformed_json(self, anon_client):
        body = assert_error(
            anon_client.post(LOGIN, '{"username": "a@b.c", "password":', content_type="application/json"), 400
        )
        assert "JSON" in body["detail"]

    def test_unsupported_media_type(self, anon_client):
        assert_error(anon_client.post(LOGIN, "<xml/>", content_type="application/xml"), 415)

    def test_one_megabyte_body_is_refused_before_parsing(self, anon_client, admin_user):
        huge = json.dumps({"username": admin_user.email, "password": "x" * (1024 * 1024)})
        response = anon_client.post(LOGIN, huge, content_type="application/json")
        assert 400 <= response.status_code < 500
        assert_error(response, 413)

    def test_one_megabyte_form_body_is_refused(self, anon_client):
        response = anon_client.post(
            LOGIN, "username=a%40b.c&password=" + "x" * (1024 * 1024), content_type="application/x-www-form-urlencoded"
        )
        assert_error(response, 413)

    def test_overlong_password_is_a_field_error(self, anon_client, admin_user):
        response = anon_client.post(LOGIN, {"username": admin_user.email, "password": "x" * 2000}, format="json")
        assert_error(response, 400, "password")

    def test_wrong_types(self, anon_client):
        assert_error(anon_client.post(LOGIN, {"username": ["a"], "password": PASSWORD}, format="json"), 400, "username")
        assert_error(anon_client.post(LOGIN, {"username": "a@b.c", "password": 123}, format="json"), 400, "password")

    def test_throttled_after_the_auth_rate(self, anon_client, admin_user, settings, one_rate_window):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "3/min"}}
        for _ in range(3):
            anon_client.post(LOGIN, {"username": admin_user.email, "password": "wrong"}, format="json")
        response = anon_client.post(LOGIN, {"username": admin_user.email, "password": PASSWORD}, format="json")
        assert_error(response, 429)
        assert "Retry-After" in response


class TestRefreshAndLogout:
    def login(self, client, user):
        return client.post(LOGIN, {"username": user.email, "password": PASSWORD}, format="json").json()

    def test_refresh_rotates_and_the_old_token_is_spent(self, anon_client, admin_user):
        tokens = self.login(anon_client, admin_user)
        response = anon_client.post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json")
        assert response.status_code == 200, response.content
        fresh = response.json()
        assert fresh["token_type"] == "bearer"
        assert fresh["refresh_token"] != tokens["refresh_token"]
        assert AccessToken(fresh["access_token"])["org_id"] == admin_user.organization_id
        again = anon_client.post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json")
        assert_error(again, 401)
        # The rotated token works once.
        assert anon_client.post(REFRESH, {"refresh_token": fresh["refresh_token"]}, format="json").status_code == 200

    def test_refresh_reissues_current_role(self, anon_client, org, analyst_user):
        tokens = self.login(anon_client, analyst_user)
        analyst_user.role = Role.ADMIN
        analyst_user.save(update_fields=["role"])
        fresh = anon_client.post(REFRESH, {"refresh_token": tokens["refresh_token"]}, format="json").json()
        assert AccessToken(fresh["access_token"])["role"] == "admin"

    def test_logout_blacklists_the_refresh_token(self, anon_client, admin_user):
        tokens = self.login(anon_client, admin_user)
        response = anon_client.post(LOGOUT, {"refresh_token": tokens["refresh_token"]}, format="json")
        assert response.status_code == 204
        body = assert_error(anon_client.post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json"), 401)
        assert "blacklisted" in body["detail"].lower()
        # A spent token is refused everywhere, logout included.
        assert_error(anon_client.post(LOGOUT, {"refresh": tokens["refresh_token"]}, format="json"), 401)

    def test_access_token_is_not_a_refresh_token(self, anon_client, admin_user):
        tokens = self.login(anon_client, admin_user)
        assert_error(anon_client.post(REFRESH, {"refresh": tokens["access_token"]}, format="json"), 401)

    def test_garbage_and_missing_refresh(self, anon_client):
        assert_error(anon_client.post(REFRESH, {"refresh": "not.a.jwt"}, format="json"), 401)
        assert_error(anon_client.post(REFRESH, {}, format="json"), 400, "refresh")
        assert_error(anon_client.post(LOGOUT, {}, format="json"), 400, "refresh")
        assert_error(anon_client.post(REFRESH, {"refresh": 5}, format="json"), 400, "refresh")

    def test_refresh_of_a_deleted_user_is_refused(self, anon_client, org, analyst_user):
        tokens = self.login(anon_client, analyst_user)
        analyst_user.delete()
        assert_error(anon_client.post(REFRESH, {"refresh": tokens["refresh_token"]}, format="json"), 401)


class TestMe:
    def test_shape(self, admin_client, admin_user, org):
        body = admin_client.get(ME).json()
        assert body == {
            "id": admin_user.pk,
            "email": admin_user.email,
            "full_name": "",
            "role": "admin",
            "is_superuser": False,
            "organization": {"id": org.pk, "name": org.name, "slug": org.slug},
        }

    def test_staff_without_organisation(self, db):
        staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
        body = client_for(staff).get(ME).json()
        assert body["organization"] is None and body["is_superuser"] is True

    def test_no_token(self, anon_client):
        assert_error(anon_client.get(ME), 401)

    def test_garbage_token(self, anon_client):
        anon_client.credentials(HTTP_AUTHORIZATION="Bearer nonsense")
        assert_error(anon_client.get(ME), 401)

    def test_expired_access_token(self, anon_client, admin_user):
        token = AccessToken.for_user(admin_user)
        token.set_exp(lifetime=-timedelta(seconds=1))
        anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        body = assert_error(anon_client.get(ME), 401)
        assert "expired" in body["detail"].lower() or "not valid" in body["detail"].lower()

    def test_deactivated_user_token_is_refused(self, admin_client, admin_user):
        admin_user.is_active = False
        admin_user.save(update_fields=["is_active"])
        assert_error(admin_client.get(ME), 401)

    def test_api_key_is_not_a_user_token(self, key_client):
        assert_error(key_client.get(ME), 401)


def test_make_org_helper_registers_through_the_service(db):
    admin = make_org("Initech")
    assert admin.role == Role.ADMIN and admin.organization.name == "Initech"
