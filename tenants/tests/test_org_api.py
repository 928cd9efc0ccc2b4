"""Organisation settings, members, invitations and API keys: roles, the last-admin rule,
one-time secrets and pagination."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import PASSWORD, client_for, make_member
from core.testing import deleted_before_update
from tenants import services
from tenants.models import ApiKey, Invitation, Organization, Role, User

from .test_auth_api import assert_error

pytestmark = pytest.mark.django_db

ORG = "/api/v1/org"
MEMBERS = "/api/v1/org/members"
INVITATIONS = "/api/v1/org/invitations"
KEYS = "/api/v1/org/api-keys"
ACCEPT = "/api/v1/auth/accept-invite"


class TestOrganization:
    def test_analyst_reads(self, analyst_client, org):
        body = analyst_client.get(ORG).json()
        assert body["id"] == org.pk
        assert set(body) == {"id", "name", "slug", "plan_type", "auto_create_features", "alert_threshold", "created_at"}

    def test_member_cannot_read(self, member_client):
        body = assert_error(member_client.get(ORG), 403)
        assert "analyst" in body["detail"]

    def test_admin_updates(self, admin_client, org):
        response = admin_client.patch(
            ORG, {"name": "Acme Ltd", "auto_create_features": False, "alert_threshold": 4.5}, format="json"
        )
        assert response.status_code == 200, response.content
        org.refresh_from_db()
        assert (org.name, org.auto_create_features, org.alert_threshold) == ("Acme Ltd", False, 4.5)

    def test_analyst_cannot_update(self, analyst_client):
        body = assert_error(analyst_client.patch(ORG, {"name": "X"}, format="json"), 403)
        assert "admin" in body["detail"]

    def test_plan_is_for_staff(self, admin_client, org):
        assert_error(admin_client.patch(ORG, {"plan_type": "enterprise"}, format="json"), 403, "plan_type")
        staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
        response = client_for(staff).patch(f"{ORG}?org_id={org.pk}", {"plan_type": "enterprise"}, format="json")
        assert response.status_code == 200, response.content
        org.refresh_from_db()
        assert org.plan_type == "enterprise"

    def test_slug_must_be_unique(self, admin_client, other_org):
        assert_error(admin_client.patch(ORG, {"slug": other_org.slug}, format="json"), 400, "slug")

    @pytest.mark.parametrize(
        "payload, field",
        [
            ({"alert_threshold": "high"}, "alert_threshold"),
            ({"alert_threshold": -1}, "alert_threshold"),
            ({"alert_threshold": True}, "alert_threshold"),
            ({"auto_create_features": 3}, "auto_create_features"),
            ({"name": ""}, "name"),
            ({"name": 7}, "name"),
            ({"plan_type": "gold"}, "plan_type"),
        ],
    )
    def test_bad_input(self, admin_client, payload, field):
        assert_error(admin_client.patch(ORG, payload, format="json"), 400, field)

    def test_empty_patch(self, admin_client):
        assert_error(admin_client.patch(ORG, {}, format="json"), 400)

    def test_staff_must_pick_an_organisation(self, db):
        staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
        assert_error(client_for(staff).get(ORG), 400, "org_id")
        assert_error(client_for(staff).get(f"{ORG}?org_id=abc"), 400, "org_id")
        assert_error(client_for(staff).get(f"{ORG}?org_id=999999"), 404)


class TestMembers:
    def test_admin_lists_members_paginated(self, admin_client, org, analyst_user, member_user, other_admin):
        body = admin_client.get(MEMBERS).json()
        assert set(body) == {"count", "next", "previous", "results"}
        assert body["count"] == 3
        emails = {row["email"] for row in body["results"]}
        assert other_admin.email not in emails
        page = admin_client.get(f"{MEMBERS}?page_size=2").json()
        assert len(page["results"]) == 2 and page["next"]
        past = admin_client.get(f"{MEMBERS}?page=99&page_size=2").json()
        assert past["results"] == [] and past["count"] == 3 and "page=2" in past["previous"]

    @pytest.mark.parametrize("size", ["abc", "null", "0", "000", "-1", "2.5", "%C2%B2", "1_0", "501", "9" * 40])
    def test_a_bad_page_size_is_400_not_ignored(self, admin_client, size):
        # DRF's paginator quietly used the default (and cut 501 to 500); the schemathesis run
        # flagged `?page_size=null` being accepted.
        assert_error(admin_client.get(f"{MEMBERS}?page_size={size}"), 400, "page_size")

    @pytest.mark.parametrize(("size", "rows"), [("", 3), ("0002", 2), ("500", 3)])
    def test_a_blank_page_size_is_the_default(self, admin_client, org, size, rows):
        make_member(org, Role.MEMBER)
        make_member(org, Role.MEMBER)
        body = admin_client.get(f"{MEMBERS}?page_size={size}&page=").json()
        assert len(body["results"]) == rows

    def test_list_query_count_is_flat(self, admin_client, org, django_assert_max_num_queries):
        for _ in range(10):
            make_member(org, Role.MEMBER)
        with django_assert_max_num_queries(4):  # user (auth), count, page
            assert admin_client.get(MEMBERS).status_code == 200

    def test_analyst_and_member_cannot_manage_members(self, analyst_client, member_client, member_user):
        for client in (analyst_client, member_client):
            assert_error(client.get(MEMBERS), 403)
            assert_error(client.patch(f"{MEMBERS}/{member_user.pk}", {"role": "admin"}, format="json"), 403)
            assert_error(client.delete(f"{MEMBERS}/{member_user.pk}"), 403)

    def test_change_role(self, admin_client, member_user):
        response = admin_client.patch(f"{MEMBERS}/{member_user.pk}", {"role": "analyst"}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["role"] == "analyst"
        member_user.refresh_from_db()
        assert member_user.role == "analyst"
        assert admin_client.get(f"{MEMBERS}/{member_user.pk}").json()["role"] == "analyst"

    def test_member_removed_while_their_role_changes_is_404(self, admin_client, member_user):
        with deleted_before_update(User, member_user.pk):
            response = admin_client.patch(f"{MEMBERS}/{member_user.pk}", {"role": "analyst"}, format="json")
        assert_error(response, 404)

    def test_form_bodies_are_refused_with_415(self, admin_client, member_user):
        # The API is JSON (only the public auth endpoints take forms): DRF reads a blank
        # optional form field as "not given", which the schema cannot say.
        response = admin_client.patch(
            f"{MEMBERS}/{member_user.pk}", "role=analyst", content_type="application/x-www-form-urlencoded"
        )
        assert_error(response, 415)

    def test_role_change_applies_to_existing_tokens(self, admin_client, member_user):
        client = client_for(member_user)
        assert client.get(ORG).status_code == 403
        admin_client.patch(f"{MEMBERS}/{member_user.pk}", {"role": "analyst"}, format="json")
        assert client.get(ORG).status_code == 200

    @pytest.mark.parametrize("role", ["owner", "", 3, None])
    def test_invalid_role(self, admin_client, member_user, role):
        assert_error(admin_client.patch(f"{MEMBERS}/{member_user.pk}", {"role": role}, format="json"), 400, "role")

    def test_last_admin_cannot_be_demoted_or_removed(self, admin_client, admin_user):
        body = assert_error(
            admin_client.patch(f"{MEMBERS}/{admin_user.pk}", {"role": "member"}, format="json"), 400, "role"
        )
        assert "last admin" in body["detail"]
        assert_error(admin_client.delete(f"{MEMBERS}/{admin_user.pk}"), 400)
        admin_user.refresh_from_db()
        assert admin_user.role == Role.ADMIN

    def test_admin_can_step_down_when_another_admin_exists(self, admin_client, admin_user, org):
        make_member(org, Role.ADMIN)
        response = admin_client.patch(f"{MEMBERS}/{admin_user.pk}", {"role": "analyst"}, format="json")
        assert response.status_code == 200

    def test_remove_member(self, admin_client, member_user):
        assert admin_client.delete(f"{MEMBERS}/{member_user.pk}").status_code == 204
        assert not User.objects.filter(pk=member_user.pk).exists()
        assert_error(admin_client.delete(f"{MEMBERS}/{member_user.pk}"), 404)

    def test_removed_member_token_stops_working(self, admin_client, member_user):
        client = client_for(member_user)
        admin_client.delete(f"{MEMBERS}/{member_user.pk}")
        assert_error(client.get("/api/v1/auth/me"), 401)

    def test_other_organisations_member_is_404(self, admin_client, other_admin):
        assert_error(admin_client.get(f"{MEMBERS}/{other_admin.pk}"), 404)
        assert_error(admin_client.patch(f"{MEMBERS}/{other_admin.pk}", {"role": "member"}, format="json"), 404)
        assert_error(admin_client.patch(f"{MEMBERS}/{other_admin.pk}", {"role": "nonsense"}, format="json"), 404)
        assert_error(admin_client.delete(f"{MEMBERS}/{other_admin.pk}"), 404)
        other_admin.refresh_from_db()
        assert other_admin.role == Role.ADMIN

    def test_post_members_invites(self, admin_client, org):
        response = admin_client.post(MEMBERS, {"email": "new@acme.example", "role": "analyst"}, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["token"]
        assert Invitation.objects.filter(organization=org, email="new@acme.example").exists()


class TestInvitations:
    def invite(self, client, email="new@acme.example", role="analyst"):
        response = client.post(INVITATIONS, {"email": email, "role": role}, format="json")
        assert response.status_code == 201, response.content
        return response.json()

    def test_member_cannot_invite(self, member_client):
        body = assert_error(member_client.post(INVITATIONS, {"email": "x@y.example"}, format="json"), 403)
        assert "admin" in body["detail"]

    def test_analyst_cannot_invite(self, analyst_client):
        assert_error(analyst_client.post(INVITATIONS, {"email": "x@y.example"}, format="json"), 403)

    def test_invite_then_accept_joins_with_the_invited_role(self, admin_client, org, anon_client):
        invitation = self.invite(admin_client)
        assert invitation["status"] == "pending" and invitation["role"] == "analyst"
        assert invitation["accept_url"].startswith("http://testserver/")
        assert invitation["token"] in invitation["accept_url"]
        assert len(mail.outbox) == 1 and invitation["accept_url"] in mail.outbox[0].body
        assert mail.outbox[0].to == ["new@acme.example"]
        stored = Invitation.objects.get(pk=invitation["id"])
        assert stored.token_hash != invitation["token"]  # only the hash is kept

        response = anon_client.post(ACCEPT, {"token": invitation["token"], "password": PASSWORD}, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["user"]["role"] == "analyst"
        assert body["organization"]["id"] == org.pk
        assert body["token_type"] == "bearer"
        user = User.objects.get(email="new@acme.example")
        assert user.organization_id == org.pk and user.role == Role.ANALYST
        # The new account logs in.
        login = anon_client.post("/api/v1/auth/login", {"username": user.email, "password": PASSWORD}, format="json")
        assert login.status_code == 200

    def test_list_shows_status_never_the_token(self, admin_client):
        self.invite(admin_client)
        body = admin_client.get(INVITATIONS).json()
        assert body["count"] == 1
        assert "token" not in body["results"][0]
        assert body["results"][0]["status"] == "pending"

    def test_used_invitation_is_refused(self, admin_client, anon_client):
        token = self.invite(admin_client)["token"]
        assert anon_client.post(ACCEPT, {"token": token, "password": PASSWORD}, format="json").status_code == 201
        body = assert_error(anon_client.post(ACCEPT, {"token": token, "password": PASSWORD}, format="json"), 400)
        assert "already been used" in body["detail"]

    def test_expired_invitation_is_refused(self, admin_client, anon_client):
        invitation = self.invite(admin_client)
        Invitation.objects.filter(pk=invitation["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
        body = assert_error(
            anon_client.post(ACCEPT, {"token": invitation["token"], "password": PASSWORD}, format="json"), 400, "token"
        )
        assert "expired" in body["detail"]
        assert not User.objects.filter(email="new@acme.example").exists()

    def test_revoked_invitation_is_refused(self, admin_client, anon_client):
        invitation = self.invite(admin_client)
        assert admin_client.delete(f"{INVITATIONS}/{invitation['id']}").status_code == 204
        body = assert_error(
            anon_client.post(ACCEPT, {"token": invitation["token"], "password": PASSWORD}, format="json"), 400
        )
        assert "withdrawn" in body["detail"]

    def test_reinviting_replaces_the_pending_link(self, admin_client, anon_client):
        first = self.invite(admin_client)
        second = self.invite(admin_client)
        assert_error(anon_client.post(ACCEPT, {"token": first["token"], "password": PASSWORD}, format="json"), 400)
        assert (
            anon_client.post(ACCEPT, {"token": second["token"], "password": PASSWORD}, format="json").status_code == 201
        )

    def test_unknown_token_is_404(self, anon_client, db):
        body = assert_error(anon_client.post(ACCEPT, {"token": "nope", "password": PASSWORD}, format="json"), 404)
        assert "token" in body["errors"]

    def test_weak_password_on_accept(self, admin_client, anon_client):
        token = self.invite(admin_client)["token"]
        assert_error(anon_client.post(ACCEPT, {"token": token, "password": "123"}, format="json"), 400, "password")
        # The invitation is still usable after a failed attempt.
        assert anon_client.post(ACCEPT, {"token": token, "password": PASSWORD}, format="json").status_code == 201

    def test_cannot_invite_an_existing_account(self, admin_client, other_admin):
        assert_error(admin_client.post(INVITATIONS, {"email": other_admin.email}, format="json"), 400, "email")

    @pytest.mark.parametrize(
        "payload, field",
        [({"email": "bad"}, "email"), ({"email": "a@b.example", "role": "owner"}, "role"), ({}, "email")],
    )
    def test_bad_input(self, admin_client, payload, field):
        assert_error(admin_client.post(INVITATIONS, payload, format="json"), 400, field)

    def test_other_organisations_invitation_is_404(self, admin_client, other_org, other_admin):
        invitation, _ = services.invitation_create(
            org=other_org, email="x@globex.example", role="member", invited_by=other_admin
        )
        assert_error(admin_client.delete(f"{INVITATIONS}/{invitation.pk}"), 404)
        invitation.refresh_from_db()
        assert invitation.revoked_at is None


class TestApiKeys:
    def test_create_shows_the_key_once(self, admin_client, org):
        response = admin_client.post(KEYS, {"name": "backend"}, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["key"].startswith("upk_") and len(body["key"]) == 36
        assert body["prefix"] == body["key"][:12]
        assert body["is_active"] is True
        listed = admin_client.get(KEYS).json()
        assert listed["count"] == 1 and "key" not in listed["results"][0]
        stored = ApiKey.objects.get(pk=body["id"])
        assert body["key"] not in (stored.key_hash, stored.prefix)

    def test_analyst_cannot_create_keys(self, analyst_client):
        body = assert_error(analyst_client.post(KEYS, {"name": "x"}, format="json"), 403)
        assert "admin" in body["detail"]
        assert not ApiKey.objects.exists()

    def test_member_cannot_list_keys(self, member_client):
        assert_error(member_client.get(KEYS), 403)

    def test_revoke(self, admin_client, api_key_pair):
        api_key, _ = api_key_pair
        assert admin_client.delete(f"{KEYS}/{api_key.pk}").status_code == 204
        api_key.refresh_from_db()
        assert api_key.revoked_at is not None
        assert admin_client.get(KEYS).json()["results"][0]["is_active"] is False
        # Revoking twice keeps the first time.
        first = api_key.revoked_at
        assert admin_client.delete(f"{KEYS}/{api_key.pk}").status_code == 204
        api_key.refresh_from_db()
        assert api_key.revoked_at == first

    def test_other_organisations_key_is_404(self, other_client, api_key_pair):
        api_key, _ = api_key_pair
        assert_error(other_client.delete(f"{KEYS}/{api_key.pk}"), 404)
        api_key.refresh_from_db()
        assert api_key.revoked_at is None

    @pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}, {"name": 5}, {"name": "x" * 101}])
    def test_bad_input(self, admin_client, payload):
        assert_error(admin_client.post(KEYS, payload, format="json"), 400, "name")

    def test_api_key_cannot_manage_keys(self, raw_api_key):
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw_api_key)
        assert_error(client.get(KEYS), 401)


def test_an_all_digit_slug_is_refused_everywhere(admin_client, org, anon_client):
    """QA pass 3, F7: slug "1" made every command's `--org 1` act on organisation 1."""
    from django.core.exceptions import ValidationError

    response = admin_client.patch("/api/v1/org", {"slug": "1"}, format="json")
    assert assert_error(response, 400, "slug")["errors"]["slug"] == [Organization.DIGITS_SLUG]
    org.refresh_from_db()
    assert org.slug != "1"
    org.slug = "42"
    with pytest.raises(ValidationError) as refused:
        org.full_clean()  # the Django admin's form
    assert refused.value.message_dict["slug"] == [Organization.DIGITS_SLUG]
    registered = anon_client.post(
        "/api/v1/auth/register",
        {"email": "digits@example.com", "password": PASSWORD, "organization_name": "2024"},
        format="json",
    )
    assert registered.status_code == 201, registered.content
    assert User.objects.get(email="digits@example.com").organization.slug == "org-2024"
