"""Allowed origins of ingestion keys: how they are checked and stored, edited through the API
and the settings page, and enforced when a key authenticates."""

import pytest
from django.urls import reverse

from conftest import make_member
from core.cors import OriginInvalid, origin_normalise
from core.exceptions import DomainError, Forbidden
from core.testing import page_client
from tenants import services
from tenants.models import ApiKey, Role
from tenants.origins import MAX_ALLOWED_ORIGINS, api_key_origins_clean

KEYS = "/api/v1/org/api-keys"
SITE_A = "https://a.example"


@pytest.mark.parametrize(
    "given,stored",
    [
        ("https://app.example.com", "https://app.example.com"),
        ("HTTPS://App.Example.COM/", "https://app.example.com"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("  https://padded.example  ", "https://padded.example"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(given, stored):
    assert origin_normalise(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "",
        "*",
        "https://*.example.com",
        "null",
        "example.com",
        "//example.com",
        "ftp://example.com",
        "https://example.com/app",
        "https://example.com/?q=1",
        "https://example.com#top",
        "https://user:pw@example.com",
        "https://",
        "https://example.com:0",
        "https://example.com:99999",
        "https://example.com:port",
        "https://exa mple.com",
        "https://a..b.example",
        "https:example.com",
        "https://" + "a" * 200 + ".com",
        42,
        None,
    ],
)
def test_what_is_not_an_origin_is_refused(given):
    with pytest.raises(OriginInvalid):
        origin_normalise(given)


def test_a_list_is_normalised_deduplicated_and_bounded():
    assert api_key_origins_clean(["https://a.example", "HTTPS://A.example/", "http://b.example"]) == [
        "https://a.example",
        "http://b.example",
    ]
    assert api_key_origins_clean([]) == []
    with pytest.raises(DomainError) as bad:
        api_key_origins_clean(["https://ok.example", "*", "https://x.example/path"])
    assert len(bad.value.errors["allowed_origins"]) == 2
    with pytest.raises(DomainError):
        api_key_origins_clean([f"https://s{n}.example" for n in range(MAX_ALLOWED_ORIGINS + 1)])
    with pytest.raises(DomainError):
        api_key_origins_clean("https://a.example")


def test_authentication_checks_the_origin(org, admin_user):
    api_key, raw = services.api_key_create(org=org, name="web", allowed_origins=["https://app.example"])
    assert services.api_key_authenticate(raw_key=raw, origin=None).pk == api_key.pk
    assert services.api_key_authenticate(raw_key=raw, origin="https://app.example").pk == api_key.pk
    with pytest.raises(Forbidden) as refused:
        services.api_key_authenticate(raw_key=raw, origin="https://evil.example")
    assert "https://evil.example" in refused.value.detail
    _, server_raw = services.api_key_create(org=org, name="server")
    with pytest.raises(Forbidden):
        services.api_key_authenticate(raw_key=server_raw, origin="https://app.example")
    # An unknown key stays a plain "no" (401), whatever the origin.
    assert services.api_key_authenticate(raw_key="upk_unknown", origin="https://app.example") is None


def test_origin_listed_reads_once_and_forgets_on_change(org, django_assert_num_queries):
    api_key, _ = services.api_key_create(org=org, name="web", allowed_origins=["https://app.example"])
    services.api_key_create(org=org, name="server")
    with django_assert_num_queries(1):
        assert services.origin_listed(origin="https://app.example")
        assert not services.origin_listed(origin="https://other.example")
    with django_assert_num_queries(0):
        assert services.origin_listed(origin="https://app.example")
    services.api_key_origins_set(api_key=api_key, allowed_origins=["https://other.example"])
    assert services.origin_listed(origin="https://other.example")
    assert not services.origin_listed(origin="https://app.example")
    services.api_key_revoke(org=org, key_id=api_key.pk)
    assert not services.origin_listed(origin="https://other.example")


# --- API -------------------------------------------------------------------------------------


def test_create_with_origins_and_list_them(admin_client, org):
    response = admin_client.post(
        KEYS, {"name": "web", "allowed_origins": ["https://App.example/", "http://localhost:3000"]}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["allowed_origins"] == ["https://app.example", "http://localhost:3000"]
    assert ApiKey.objects.get(organization=org).allowed_origins == ["https://app.example", "http://localhost:3000"]
    listed = admin_client.get(KEYS).json()["results"][0]
    assert listed["allowed_origins"] == ["https://app.example", "http://localhost:3000"]
    assert admin_client.post(KEYS, {"name": "server"}, format="json").json()["allowed_origins"] == []


@pytest.mark.parametrize(
    "origins",
    [["*"], ["https://app.example/path"], ["app.example"], "https://app.example", [42], [None], ["x"] * 21],
)
def test_bad_origins_are_a_400_naming_the_field(admin_client, origins):
    response = admin_client.post(KEYS, {"name": "web", "allowed_origins": origins}, format="json")
    assert response.status_code == 400, response.json()
    assert "allowed_origins" in str(response.json()["errors"])
    assert not ApiKey.objects.exists()


def test_patch_replaces_the_origins(admin_client, api_key_pair, django_assert_num_queries):
    api_key, _ = api_key_pair
    url = f"{KEYS}/{api_key.pk}"
    with django_assert_num_queries(3):  # the admin, the key with its creator, the update
        response = admin_client.patch(
            url, {"allowed_origins": ["https://a.example", "https://b.example"]}, format="json"
        )
    assert response.status_code == 200, response.json()
    assert response.json()["allowed_origins"] == ["https://a.example", "https://b.example"]
    assert admin_client.patch(url, {"allowed_origins": []}, format="json").json()["allowed_origins"] == []
    api_key.refresh_from_db()
    assert api_key.allowed_origins == []
    assert admin_client.patch(url, {"allowed_origins": ["ftp://x.example"]}, format="json").status_code == 400
    assert admin_client.patch(url, {}, format="json").status_code == 400


def test_patch_another_organisations_key_is_a_404(admin_client, other_org, other_admin):
    foreign, _ = services.api_key_create(org=other_org, name="theirs", created_by=other_admin)
    response = admin_client.patch(f"{KEYS}/{foreign.pk}", {"allowed_origins": ["https://a.example"]}, format="json")
    assert response.status_code == 404
    assert admin_client.patch(f"{KEYS}/999999", {"allowed_origins": []}, format="json").status_code == 404
    foreign.refresh_from_db()
    assert foreign.allowed_origins == []


def test_patch_a_revoked_key_is_refused(admin_client, org, api_key_pair):
    api_key, _ = api_key_pair
    services.api_key_revoke(org=org, key_id=api_key.pk)
    response = admin_client.patch(f"{KEYS}/{api_key.pk}", {"allowed_origins": ["https://a.example"]}, format="json")
    assert response.status_code == 400
    assert "revoked" in response.json()["detail"]


def test_only_admins_edit_origins(analyst_client, member_client, api_key_pair):
    api_key, _ = api_key_pair
    for client in (analyst_client, member_client):
        response = client.patch(f"{KEYS}/{api_key.pk}", {"allowed_origins": ["https://a.example"]}, format="json")
        assert response.status_code == 403


# --- Settings page ----------------------------------------------------------------------------


@pytest.fixture
def admin_page(admin_user):
    return page_client(admin_user)


def test_settings_page_creates_a_browser_key_and_shows_the_script_tag(admin_page, org):
    response = admin_page.post(
        reverse("settings:api-keys"), {"name": "site", "allowed_origins": "https://app.example\nhttp://localhost:3000"}
    )
    assert response.status_code == 200
    api_key = ApiKey.objects.get(organization=org)
    assert api_key.allowed_origins == ["https://app.example", "http://localhost:3000"]
    page = response.text
    assert "/static/up.js" in page and "data-key=&quot;upk_" in page
    assert "<code>https://app.example</code>" in page


def test_settings_page_refuses_a_bad_origin_as_a_form_error(admin_page, org):
    response = admin_page.post(reverse("settings:api-keys"), {"name": "site", "allowed_origins": "https://x/*"})
    assert response.status_code == 200
    assert "Wildcards are not allowed" in response.text
    assert not ApiKey.objects.exists()


def test_settings_page_edits_origins(admin_page, org, api_key_pair):
    api_key, _ = api_key_pair
    url = reverse("settings:api-key-origins", args=[api_key.pk])
    page = admin_page.get(reverse("settings:api-keys")).text
    assert "server-side only" in page and url in page

    response = admin_page.post(url, {"allowed_origins": "https://a.example, https://b.example"})
    assert response.status_code == 200
    assert "accepts browser requests from 2 origins" in response.text
    api_key.refresh_from_db()
    assert api_key.allowed_origins == ["https://a.example", "https://b.example"]

    response = admin_page.post(url, {"allowed_origins": "https://a.example/path"})
    assert "no path" in response.text
    assert "https://a.example/path</textarea>" in response.text  # the text as typed, to correct
    api_key.refresh_from_db()
    assert api_key.allowed_origins == ["https://a.example", "https://b.example"]

    response = admin_page.post(url, {"allowed_origins": ""})
    assert "server-side only" in response.text
    api_key.refresh_from_db()
    assert api_key.allowed_origins == []


def test_settings_page_origins_of_another_organisation_is_a_404(admin_page, other_org, other_admin, org):
    foreign, _ = services.api_key_create(org=other_org, name="theirs", created_by=other_admin)
    url = reverse("settings:api-key-origins", args=[foreign.pk])
    assert admin_page.post(url, {"allowed_origins": "https://a.example"}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.allowed_origins == []


def test_settings_page_origins_needs_the_admin_role(admin_page, org, api_key_pair):
    api_key, _ = api_key_pair
    url = reverse("settings:api-key-origins", args=[api_key.pk])
    analyst = page_client(make_member(org, Role.ANALYST))
    assert analyst.post(url, {"allowed_origins": "https://a.example"}).status_code == 403
    assert admin_page.get(url).status_code == 405


def test_settings_page_edit_query_count(admin_page, org, admin_user, django_assert_num_queries):
    keys = [services.api_key_create(org=org, name=f"k{n}", created_by=admin_user)[0] for n in range(3)]
    url = reverse("settings:api-key-origins", args=[keys[0].pk])
    # session, user, organisation, the key, its update, the listing (keys with their creators)
    with django_assert_num_queries(6):
        assert admin_page.post(url, {"allowed_origins": "https://a.example"}).status_code == 200
