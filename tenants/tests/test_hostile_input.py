"""Hostile bodies and ids on the auth and organisation endpoints: JSON the standard library
would accept but no database can store (lone surrogates), bodies nested past any sane
depth, NUL, ids past a bigint, unusable tokens. Each answers its exact status with the
error shape, never a 500 or a trace."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from conftest import PASSWORD, client_for
from core.parsers import MAX_JSON_DEPTH
from tenants.models import Organization, User

pytestmark = pytest.mark.django_db

BIG = "99999999999999999999"


def nested(depth):
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def assert_refused(response, status, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert "Traceback" not in response.content.decode()
    if field:
        assert field in body["errors"], body
    return body


HOSTILE_JSON = [
    b'{"username": "\\ud800@x.example", "password": "x"}',  # stdlib json accepts it
    b'{"username": "a@x.example", "password": "\\udfff"}',
    ('{"username": "a@x.example", "password": "x", "extra": ' + nested(MAX_JSON_DEPTH + 1) + "}").encode(),
    ('{"username": "a@x.example", "password": "x", "extra": ' + nested(995) + "}").encode(),  # RecursionError
    ("[" * 1100 + "]" * 1100).encode(),
    b'{"username": NaN}',
]


@pytest.mark.parametrize("raw", HOSTILE_JSON, ids=range(len(HOSTILE_JSON)))
@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/auth/register", "/api/v1/auth/refresh"])
def test_unparseable_json_on_public_endpoints_is_400(anon_client, path, raw):
    assert_refused(anon_client.generic("POST", path, raw, content_type="application/json"), 400)


@pytest.mark.parametrize("raw", HOSTILE_JSON, ids=range(len(HOSTILE_JSON)))
def test_unparseable_json_on_authenticated_endpoints_is_400(admin_client, org, raw):
    assert_refused(admin_client.generic("PATCH", "/api/v1/org", raw, content_type="application/json"), 400)
    org.refresh_from_db()
    assert org.name == "Acme"


def test_json_exactly_at_the_depth_limit_parses(admin_client, org):
    # Parsed, then judged by the endpoint: the deep field is refused as unknown, by name.
    body = '{"name": "Deep Ltd", "extra": ' + nested(MAX_JSON_DEPTH - 1) + "}"
    response = admin_client.generic("PATCH", "/api/v1/org", body.encode(), content_type="application/json")
    assert response.status_code == 400, response.content
    assert set(response.json()["errors"]) == {"extra"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "a\x00b@x.example", "password": PASSWORD, "organization_name": "X"}, "email"),
        ({"email": "new@x.example", "password": PASSWORD, "organization_name": "X\x00Y"}, "organization_name"),
        ({"email": "new@x.example", "password": "pass\x00word-long-enough", "organization_name": "X"}, "password"),
    ],
)
def test_nul_in_register_fields_is_400_naming_the_field(anon_client, payload, field):
    assert_refused(anon_client.post("/api/v1/auth/register", payload, format="json"), 400, field)
    assert not Organization.objects.filter(name__startswith="X").exists()


def test_nul_in_login_and_org_fields(anon_client, admin_client, admin_user):
    assert_refused(
        anon_client.post("/api/v1/auth/login", {"username": admin_user.email + "\x00", "password": "x"}, format="json"),
        400,
        "username",
    )
    assert_refused(admin_client.patch("/api/v1/org", {"name": "A\x00"}, format="json"), 400, "name")
    accept = {"token": "\x00", "password": PASSWORD}
    assert_refused(anon_client.post("/api/v1/auth/accept-invite", accept, format="json"), 400, "token")


def test_wrong_content_type_is_415(admin_client):
    response = admin_client.generic("PATCH", "/api/v1/org", b"name=X", content_type="text/plain")
    assert_refused(response, 415)


def test_unusable_refresh_tokens_are_401(anon_client, admin_user):
    expired = RefreshToken.for_user(admin_user)
    expired.set_exp(from_time=timezone.now() - timedelta(days=30), lifetime=timedelta(days=1))
    for token in (str(expired), "garbage", "a.b.c", "\u00e9" * 50):
        assert_refused(anon_client.post("/api/v1/auth/refresh", {"refresh": token}, format="json"), 401)
        assert_refused(anon_client.post("/api/v1/auth/logout", {"refresh": token}, format="json"), 401)


def test_garbage_access_tokens_are_401(org):
    for header in ("Bearer " + "x" * 5000, "Bearer \u00e9", "Bearer a.b.c", "Basic Zm9vOmJhcg=="):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert_refused(client.get("/api/v1/auth/me"), 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("patch", f"/api/v1/org/members/{BIG}"),
        ("delete", f"/api/v1/org/members/{BIG}"),
        ("delete", f"/api/v1/org/invitations/{BIG}"),
        ("delete", f"/api/v1/org/api-keys/{BIG}"),
        ("get", f"/api/v1/org/webhooks/{BIG}"),
        ("get", f"/api/v1/org/webhooks/{BIG}/deliveries"),
        ("get", f"/api/v1/ai/anomalies/{BIG}"),
    ],
)
def test_ids_past_a_bigint_are_404(admin_client, method, path):
    # A GET's data is its query string, which the figures' endpoints refuse when unknown.
    data = None if method == "get" else {"role": "analyst"}
    assert_refused(getattr(admin_client, method)(path, data, format="json"), 404)


@pytest.mark.parametrize(
    ("org_id", "status"),
    [(BIG, 404), ("²", 400), ("1e3", 400), ("\x00", 400), ("-1", 404)],
)
def test_staff_org_id_that_is_no_id(org, org_id, status):
    staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
    response = client_for(staff).get("/api/v1/org", {"org_id": org_id})
    assert_refused(response, status, "org_id" if status == 400 else None)


@pytest.mark.parametrize(
    "url",
    [f"/settings/members/{BIG}/role/", f"/settings/members/{BIG}/remove/", f"/settings/api-keys/{BIG}/revoke/"],
)
def test_page_ids_past_a_bigint_are_404_pages(admin_user, url):
    from core.testing import page_client

    assert page_client(admin_user).post(url, {"role": "analyst"}).status_code == 404
