"""Settings pages (organisation, members, invitations, API keys, webhooks) through Django's
test client: roles, tenancy (foreign ids → 404 page), form errors instead of 500s, HTMX
partials, CSRF."""

import hashlib

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from conftest import PASSWORD, make_member
from core.testing import page_client
from tenants import services as tenant_services
from tenants.models import ApiKey, Invitation, Role, User

# The Webhooks tab is served by insights (tested in insights/tests/test_pages.py); tenants
# tests may not import insights, but the tab still needs the admin role.
SETTINGS_PAGES = [
    "settings:organization",
    "settings:members",
    "settings:api-keys",
    "webhook-settings:index",
    "alert-rule-settings:index",
]


@pytest.fixture
def admin_page(admin_user):
    return page_client(admin_user)


@pytest.fixture
def htmx_admin(admin_user):
    return page_client(admin_user, **{"HX-Request": "true"})


# --- Access --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SETTINGS_PAGES)
def test_admin_opens_every_settings_tab(admin_page, org, name):
    response = admin_page.get(reverse(name))
    assert response.status_code == 200
    assert org.name in response.text
    assert 'class="nav-item active" href="/settings/"' in response.text


@pytest.mark.parametrize("name", SETTINGS_PAGES)
def test_anonymous_is_sent_to_login(name):
    response = Client().get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=/settings/")


@pytest.mark.parametrize("name", SETTINGS_PAGES)
@pytest.mark.parametrize("role", [Role.ANALYST, Role.MEMBER])
def test_analysts_and_members_get_the_403_page(org, role, name):
    response = page_client(make_member(org, role)).get(reverse(name))
    assert response.status_code == 403
    assert "admin role" in response.text
    assert "<html" in response.text  # the page, not JSON


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("settings:member-role", {"member_id": 1}),
        ("settings:invitation-create", {}),
        ("settings:api-keys", {}),
    ],
)
def test_analyst_cannot_post_settings_actions(analyst_user, name, kwargs):
    response = page_client(analyst_user).post(reverse(name, kwargs=kwargs), {"role": "admin", "name": "x"})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_forms_need_a_csrf_token(admin_user, org):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(reverse("settings:api-keys"), {"name": "no token"})
    assert response.status_code == 403
    assert not ApiKey.objects.filter(organization=org).exists()
    page = client.get(reverse("settings:api-keys")).text
    assert 'name="csrfmiddlewaretoken"' in page


# --- Organisation --------------------------------------------------------------------------


def test_organisation_form_saves(admin_page, org):
    response = admin_page.post(
        reverse("settings:organization"),
        {"name": "Acme Renamed", "alert_threshold": "4.25"},  # checkbox absent = off
        follow=True,
    )
    assert response.status_code == 200
    assert "Organisation settings saved." in response.text
    org.refresh_from_db()
    assert (org.name, org.alert_threshold, org.auto_create_features) == ("Acme Renamed", 4.25, False)
    assert "Standard" in response.text  # the plan is shown, not editable


@pytest.mark.parametrize(
    "data,field",
    [
        ({"name": "", "alert_threshold": "3"}, "name"),
        ({"name": "Acme", "alert_threshold": "lots"}, "alert_threshold"),
        ({"name": "Acme", "alert_threshold": "0"}, "alert_threshold"),
        ({"name": "Acme", "alert_threshold": "nan"}, "alert_threshold"),
        ({"name": "x" * 201, "alert_threshold": "3"}, "name"),
    ],
)
def test_organisation_form_bad_input_shows_errors(admin_page, org, data, field):
    response = admin_page.post(reverse("settings:organization"), data)
    assert response.status_code == 200
    assert f'data-field="{field}"' in response.text
    org.refresh_from_db()
    assert org.name == "Acme" and org.alert_threshold == 3.5


# --- Members -------------------------------------------------------------------------------


def test_members_page_lists_members_with_roles(admin_page, admin_user, analyst_user, member_user, other_admin):
    text = admin_page.get(reverse("settings:members")).text
    for user in (admin_user, analyst_user, member_user):
        assert user.email in text
    assert other_admin.email not in text


def test_change_role(htmx_admin, analyst_user):
    response = htmx_admin.post(reverse("settings:member-role", args=[analyst_user.pk]), {"role": "admin"})
    assert response.status_code == 200
    assert "is now admin" in response.text
    assert '<aside class="sidebar">' not in response.text  # HTMX gets the section only
    analyst_user.refresh_from_db()
    assert analyst_user.role == Role.ADMIN


def test_last_admin_cannot_be_demoted_or_removed(admin_page, admin_user):
    response = admin_page.post(reverse("settings:member-role", args=[admin_user.pk]), {"role": "member"})
    assert response.status_code == 200
    assert "The last admin cannot be demoted" in response.text
    response = admin_page.post(reverse("settings:member-remove", args=[admin_user.pk]))
    assert "The last admin cannot be removed" in response.text
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ADMIN


def test_bad_role_value_is_a_message_not_a_500(admin_page, analyst_user):
    response = admin_page.post(reverse("settings:member-role", args=[analyst_user.pk]), {"role": "owner"})
    assert response.status_code == 200
    assert "Choose one of the roles" in response.text
    analyst_user.refresh_from_db()
    assert analyst_user.role == Role.ANALYST


def test_remove_member(admin_page, member_user):
    response = admin_page.post(reverse("settings:member-remove", args=[member_user.pk]))
    assert response.status_code == 200
    assert f"{member_user.email} was removed" in response.text
    assert not User.objects.filter(pk=member_user.pk).exists()


def test_admin_removing_themselves_is_signed_out(org, admin_user):
    second = make_member(org, Role.ADMIN)
    client = page_client(second)
    response = client.post(reverse("settings:member-remove", args=[second.pk]))
    assert response.status_code == 302
    assert client.get(reverse("settings:members")).status_code == 302  # back to login


def test_admin_stepping_down_leaves_settings(org, admin_user):
    make_member(org, Role.ADMIN)
    client = Client(headers={"HX-Request": "true"})
    client.force_login(admin_user)
    response = client.post(reverse("settings:member-role", args=[admin_user.pk]), {"role": "analyst"})
    assert response.status_code == 200 and response["HX-Redirect"] == "/"
    admin_user.refresh_from_db()
    assert admin_user.role == Role.ANALYST
    assert client.get(reverse("settings:members")).status_code == 403


def test_foreign_member_ids_are_404_pages(admin_page, other_admin):
    for name in ("settings:member-role", "settings:member-remove"):
        response = admin_page.post(reverse(name, args=[other_admin.pk]), {"role": "member"})
        assert response.status_code == 404
        assert "<html" in response.text
    other_admin.refresh_from_db()
    assert other_admin.role == Role.ADMIN


# --- Invitations ---------------------------------------------------------------------------


def test_invitation_create_shows_the_accept_link_once(admin_page, org):
    response = admin_page.post(reverse("settings:invitation-create"), {"email": "New@Example.com", "role": "analyst"})
    assert response.status_code == 200
    invitation = Invitation.objects.get(organization=org)
    assert invitation.email == "new@example.com" and invitation.role == Role.ANALYST
    marker = 'data-testid="invite-link" aria-label="Invitation link">'
    link = response.text.split('id="invite-link" ')[0].rsplit('value="', 1)[1].split('"')[0]
    assert link.startswith("http://testserver/invite/")
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert hashlib.sha256(token.encode()).hexdigest() == invitation.token_hash
    later = admin_page.get(reverse("settings:members")).text
    assert token not in later and marker not in later
    assert "new@example.com" in later and "Pending" in later
    assert len(mail.outbox) == 1 and link in mail.outbox[0].body


@pytest.mark.parametrize(
    "data,field",
    [({"email": "not-an-email", "role": "member"}, "email"), ({"email": "a@b.example", "role": "boss"}, "role")],
)
def test_invitation_bad_input(admin_page, org, data, field):
    response = admin_page.post(reverse("settings:invitation-create"), data)
    assert response.status_code == 200
    assert f'data-field="{field}"' in response.text
    assert not Invitation.objects.filter(organization=org).exists()


def test_invitation_for_a_registered_email_is_a_form_error(admin_page, analyst_user):
    response = admin_page.post(reverse("settings:invitation-create"), {"email": analyst_user.email, "role": "member"})
    assert response.status_code == 200
    assert "Already registered." in response.text


def test_invitation_revoke_and_foreign_revoke(admin_page, org, admin_user, other_org, other_admin):
    mine, _ = tenant_services.invitation_create(org=org, email="x@x.example", role="member", invited_by=admin_user)
    theirs, _ = tenant_services.invitation_create(
        org=other_org, email="y@y.example", role="member", invited_by=other_admin
    )
    response = admin_page.post(reverse("settings:invitation-revoke", args=[mine.pk]))
    assert response.status_code == 200 and "Invitation revoked." in response.text
    mine.refresh_from_db()
    assert mine.revoked_at is not None
    assert admin_page.post(reverse("settings:invitation-revoke", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_invitation_accept_page_joins_and_signs_in(org, admin_user):
    _, token = tenant_services.invitation_create(org=org, email="joiner@x.example", role="analyst", invited_by=None)
    client = Client()
    url = reverse("invitation-accept", args=[token])
    page = client.get(url)
    assert page.status_code == 200
    summary = page.text.split('data-testid="invitation-summary">')[1].split("</p>")[0]
    assert org.name in summary and "joiner@x.example" in summary and "analyst" in summary
    response = client.post(url, {"full_name": "Jo", "password": "short", "password_confirm": "short"})
    assert response.status_code == 200 and 'data-field="password"' in response.text
    response = client.post(url, {"password": PASSWORD, "password_confirm": PASSWORD + "x"})
    assert 'data-field="password_confirm"' in response.text
    response = client.post(url, {"full_name": "Jo", "password": PASSWORD, "password_confirm": PASSWORD})
    assert response.status_code == 302
    user = User.objects.get(email="joiner@x.example")
    assert (user.organization, user.role, user.full_name) == (org, Role.ANALYST, "Jo")
    assert int(client.session["_auth_user_id"]) == user.pk  # signed in
    # Once used, the link says so and shows no form, to a GET as to a POST.
    for again in (Client().get(url), Client().post(url, {"password": PASSWORD, "password_confirm": PASSWORD})):
        assert again.status_code == 410 and "already been used" in again.text
        assert 'data-testid="accept-form"' not in again.text and org.name in again.text


@pytest.mark.parametrize("state", ["revoked", "expired"])
def test_invitation_accept_page_for_a_dead_link(org, state):
    from datetime import timedelta

    from django.utils import timezone

    invitation, token = tenant_services.invitation_create(
        org=org, email="late@x.example", role="member", invited_by=None
    )
    field = {"revoked": "revoked_at", "expired": "expires_at"}[state]
    setattr(invitation, field, timezone.now() - timedelta(seconds=1))
    invitation.save(update_fields=[field])
    response = Client().get(reverse("invitation-accept", args=[token]))
    assert response.status_code == 410 and 'data-testid="accept-form"' not in response.text
    assert {"revoked": "withdrawn", "expired": "expired"}[state] in response.text
    assert not User.objects.filter(email="late@x.example").exists()


def test_invitation_accept_with_unknown_token(db):
    for response in (
        Client().get(reverse("invitation-accept", args=["nope"])),
        Client().post(
            reverse("invitation-accept", args=["nope"]), {"password": PASSWORD, "password_confirm": PASSWORD}
        ),
    ):
        assert response.status_code == 404
        assert "No invitation matches this link" in response.text and 'data-testid="accept-form"' not in response.text


# --- API keys ------------------------------------------------------------------------------


def test_api_key_create_shows_key_and_curl_once(admin_page, org):
    response = admin_page.post(reverse("settings:api-keys"), {"name": "web app"})
    assert response.status_code == 200
    api_key = ApiKey.objects.get(organization=org)
    raw = response.text.split('data-testid="new-key-value">')[1].split("<")[0]
    assert raw.startswith("upk_") and len(raw) == 36
    assert hashlib.sha256(raw.encode()).hexdigest() == api_key.key_hash
    assert "curl -X POST http://testserver/api/v1/events/track" in response.text
    assert f"Authorization: Bearer {raw}" in response.text
    listing = admin_page.get(reverse("settings:api-keys")).text
    assert raw not in listing
    assert api_key.prefix in listing and "never" in listing


def test_api_key_empty_name_is_a_form_error(admin_page, org):
    response = admin_page.post(reverse("settings:api-keys"), {"name": "  "})
    assert response.status_code == 200
    assert 'data-field="name"' in response.text
    assert not ApiKey.objects.filter(organization=org).exists()


def test_api_key_revoke_and_foreign_key(admin_page, api_key_pair, other_org, other_admin):
    api_key, _ = api_key_pair
    foreign, _ = tenant_services.api_key_create(org=other_org, name="theirs", created_by=other_admin)
    response = admin_page.post(reverse("settings:api-key-revoke", args=[api_key.pk]))
    assert response.status_code == 200 and "revoked" in response.text
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    assert admin_page.post(reverse("settings:api-key-revoke", args=[foreign.pk])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_api_keys_page_query_count(admin_page, org, admin_user, django_assert_num_queries):
    for n in range(5):
        tenant_services.api_key_create(org=org, name=f"k{n}", created_by=admin_user)
    # session, user, organisation, keys (with their creators in the same query)
    with django_assert_num_queries(4):
        assert admin_page.get(reverse("settings:api-keys")).status_code == 200


def test_members_page_query_count(admin_page, org, admin_user, django_assert_num_queries):
    for n in range(5):
        make_member(org, Role.ANALYST)
        tenant_services.invitation_create(org=org, email=f"i{n}@x.example", role="member", invited_by=admin_user)
    # session, user, organisation, members, invitations (with who invited them)
    with django_assert_num_queries(5):
        assert admin_page.get(reverse("settings:members")).status_code == 200


def test_htmx_create_returns_the_section(htmx_admin):
    response = htmx_admin.post(reverse("settings:api-keys"), {"name": "htmx"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith("{% load") is False
    assert 'id="api-keys-section"' in response.text
    assert '<aside class="sidebar">' not in response.text


def test_get_on_action_urls_is_not_allowed(admin_page, analyst_user):
    response = admin_page.get(reverse("settings:member-remove", args=[analyst_user.pk]))
    assert response.status_code == 405
    assert User.objects.filter(pk=analyst_user.pk).exists()


def test_organization_page_query_count(admin_page, django_assert_num_queries):
    # session, user, organisation: the form is the organisation's own fields
    with django_assert_num_queries(3):
        assert admin_page.get(reverse("settings:organization")).status_code == 200


def test_invitation_page_query_count(db, django_assert_num_queries):
    # The page is public: one query, the invitation with its organisation.
    with django_assert_num_queries(1):
        assert Client().get(reverse("invitation-accept", args=["any-token"])).status_code == 404
