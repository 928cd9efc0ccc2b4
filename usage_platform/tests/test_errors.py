"""One error shape everywhere, and never a stack trace with DEBUG=False."""

import pytest
from rest_framework.test import APIClient

pytestmark = [pytest.mark.django_db, pytest.mark.urls("usage_platform.tests.urls_probe")]


@pytest.fixture
def crash_client(settings):
    settings.DEBUG = False
    return APIClient(raise_request_exception=False)


@pytest.mark.parametrize("path", ["/api/v1/_probe/crash", "/api/v1/_probe/crash-plain"])
def test_unhandled_exception_under_api_is_json_without_trace(crash_client, path):
    response = crash_client.get(path)
    assert response.status_code == 500
    assert response["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "Internal server error; the failure was logged.", "errors": {}}
    content = response.content.decode()
    assert "Traceback" not in content and "hunter2" not in content and "RuntimeError" not in content


def test_unhandled_exception_on_a_page_is_the_html_error_page(crash_client):
    response = crash_client.get("/_probe/crash-page")
    assert response.status_code == 500
    content = response.content.decode()
    assert "Traceback" not in content and "hunter2" not in content


def test_unknown_api_path_is_json_404(anon_client):
    response = anon_client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "errors": {}}


def test_trailing_slash_variant_is_json_404(anon_client):
    response = anon_client.post("/api/v1/auth/login/", {}, format="json")
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "errors"}


def test_method_not_allowed_is_json(admin_client):
    response = admin_client.put("/api/v1/org", {}, format="json")
    assert response.status_code == 405
    assert set(response.json()) == {"detail", "errors"}


@pytest.mark.parametrize(
    "body",
    ['{"name": ', "{'name': 'single quotes'}", "\x00\x01", '{"name": "x"} trailing', "NaN-ish {"],
)
def test_malformed_json_on_an_authenticated_endpoint(admin_client, body):
    response = admin_client.patch("/api/v1/org", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"detail", "errors"}


def test_invalid_utf8_json(anon_client):
    response = anon_client.post("/api/v1/auth/login", b'{"username": "\xff\xfe"}', content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()) == {"detail", "errors"}


def test_body_over_the_upload_limit_is_a_4xx_json(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = admin_client.patch("/api/v1/org", "name=" + "x" * 4096, content_type="application/x-www-form-urlencoded")
    assert 400 <= response.status_code < 500, response.status_code
    assert set(response.json()) == {"detail", "errors"}


def test_validation_errors_are_flattened(admin_client):
    response = admin_client.post("/api/v1/org/invitations", {"email": "bad", "role": "owner"}, format="json")
    body = response.json()
    assert response.status_code == 400
    assert body["errors"]["email"] and body["errors"]["role"]
    assert body["detail"].startswith(("email:", "role:"))


def test_json_body_over_a_megabyte_on_a_settings_endpoint_is_413(admin_client, org):
    # DRF's JSON parser ignores DATA_UPLOAD_MAX_MEMORY_SIZE; OrgAPIView refuses it up front.
    huge = '{"name": "' + "x" * (1024 * 1024) + '"}'
    response = admin_client.patch("/api/v1/org", huge, content_type="application/json")
    assert response.status_code == 413
    assert set(response.json()) == {"detail", "errors"}
    org.refresh_from_db()
    assert org.name == "Acme"
