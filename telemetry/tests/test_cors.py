"""CORS on the ingestion routes: preflights answered for origins some active key lists, the
key's own list enforced on the request, a person's token refused from another origin, and the
key in the body for sendBeacon (text/plain, no header)."""

import uuid

import orjson
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from telemetry.tests.helpers import BATCH, TRACK, event, stored
from tenants import services as tenant_services
from tenants.permissions import IngestAPIView

pytestmark = pytest.mark.django_db

SITE = "https://app.example"
OTHER = "https://evil.example"


@pytest.fixture
def browser_key(org, admin_user):
    """A key that pages on SITE may use: (row, raw key)."""
    return tenant_services.api_key_create(org=org, name="site", created_by=admin_user, allowed_origins=[SITE])


def preflight(path, origin, method="POST", headers="content-type"):
    return Client().options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS=headers,
    )


def beacon(path, body, origin=None, **headers):
    """What sendBeacon (and up.js's fetch) sends: a text/plain JSON body, no credentials."""
    if origin:
        headers["HTTP_ORIGIN"] = origin
    return Client().generic("POST", path, orjson.dumps(body), content_type="text/plain;charset=UTF-8", **headers)


# --- Preflight -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [TRACK, BATCH])
def test_preflight_for_a_listed_origin_is_allowed(browser_key, path):
    response = preflight(path, SITE, headers="content-type, x-api-key")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == SITE
    assert "POST" in response["Access-Control-Allow-Methods"]
    allowed = response["Access-Control-Allow-Headers"].lower()
    assert "content-type" in allowed and "x-api-key" in allowed and "authorization" in allowed
    assert int(response["Access-Control-Max-Age"]) > 0
    assert "Origin" in response["Vary"]
    assert "Access-Control-Allow-Credentials" not in response


@pytest.mark.parametrize("path", [TRACK, BATCH])
def test_preflight_for_an_unlisted_origin_is_a_json_403(browser_key, path):
    response = preflight(path, OTHER)
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    body = response.json()
    assert OTHER in body["detail"] and "origin" in body["errors"]
    assert "Origin" in response["Vary"]


def test_preflight_ignores_revoked_keys_and_keys_without_origins(org, browser_key):
    tenant_services.api_key_create(org=org, name="server")
    tenant_services.api_key_revoke(org=org, key_id=browser_key[0].pk)
    assert preflight(BATCH, SITE).status_code == 403
    assert preflight(BATCH, "null").status_code == 403


def test_preflight_reads_the_listed_origins_once(browser_key, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert preflight(BATCH, SITE).status_code == 204
        assert preflight(BATCH, OTHER).status_code == 403
        assert preflight(TRACK, SITE).status_code == 204


def test_options_without_origin_is_not_a_preflight(key_client):
    # No Origin: not a browser's preflight; DRF answers OPTIONS as for any API view.
    response = key_client.options(BATCH)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


# --- The request itself ----------------------------------------------------------------------


def test_listed_origin_sends_with_the_key_in_a_header(org, browser_key):
    _, raw = browser_key
    response = beacon(TRACK, event(), SITE, HTTP_X_API_KEY=raw)
    assert response.status_code == 201, response.content
    assert response["Access-Control-Allow-Origin"] == SITE
    assert "Retry-After" in response["Access-Control-Expose-Headers"]
    assert "Origin" in response["Vary"]
    assert "Access-Control-Allow-Credentials" not in response
    assert stored(org) == 1


@pytest.mark.parametrize("path", [TRACK, BATCH])
def test_unlisted_origin_is_refused_and_nothing_stored(org, browser_key, path):
    _, raw = browser_key
    body = event() if path == TRACK else {"events": [event()]}
    response = beacon(path, body, OTHER, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 403
    assert OTHER in response.json()["detail"] and "origin" in response.json()["errors"]
    # Readable by the refused page, so a tracker stops instead of retrying a "network error".
    assert response["Access-Control-Allow-Origin"] == OTHER
    assert stored(org) == 0


def test_a_key_without_origins_is_server_side_only(org, raw_api_key):
    assert beacon(TRACK, event(), SITE, HTTP_X_API_KEY=raw_api_key).status_code == 403
    assert beacon(TRACK, event(), None, HTTP_X_API_KEY=raw_api_key).status_code == 201  # no Origin: a server
    assert stored(org) == 1


def test_same_origin_pages_need_no_listed_origin(org, raw_api_key):
    # Swagger UI's "Try it out" on the platform itself sends the platform's own Origin.
    response = beacon(TRACK, event(), "http://testserver", HTTP_X_API_KEY=raw_api_key)
    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response
    assert stored(org) == 1


def test_origin_null_is_refused(org, browser_key):
    _, raw = browser_key
    assert beacon(TRACK, event(), "null", HTTP_X_API_KEY=raw).status_code == 403
    assert stored(org) == 0


def test_a_persons_token_is_refused_from_another_origin(org, member_user, admin_client, browser_key):
    body = orjson.dumps({"feature": "search"})
    response = admin_client.generic("POST", TRACK, body, content_type="application/json", HTTP_ORIGIN=SITE)
    assert response.status_code == 403
    assert "ingestion key" in response.json()["detail"]
    assert stored(org) == 0
    same_origin = admin_client.generic(
        "POST", TRACK, body, content_type="application/json", HTTP_ORIGIN="http://testserver"
    )
    assert same_origin.status_code == 201


def test_origin_changes_apply_at_once_in_this_process(org, browser_key):
    api_key, raw = browser_key
    assert beacon(TRACK, event(), SITE, HTTP_X_API_KEY=raw).status_code == 201
    tenant_services.api_key_origins_set(api_key=api_key, allowed_origins=["https://new.example"])
    assert beacon(TRACK, event(), SITE, HTTP_X_API_KEY=raw).status_code == 403
    assert beacon(TRACK, event(), "https://new.example", HTTP_X_API_KEY=raw).status_code == 201


# --- The key in the body (sendBeacon cannot set headers) ---------------------------------------


def test_batch_with_the_key_in_a_text_plain_body(org, browser_key, django_assert_num_queries):
    _, raw = browser_key
    body = {"api_key": raw, "events": [event(uuid=str(uuid.uuid4())), event(uuid=str(uuid.uuid4()))]}
    response = beacon(BATCH, body, SITE)
    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 2
    assert response["Access-Control-Allow-Origin"] == SITE
    assert stored(org) == 2
    assert beacon(BATCH, body, SITE).json()["duplicates"] == 2  # a re-sent beacon stores nothing twice


def test_track_with_the_key_in_the_body(org, browser_key):
    _, raw = browser_key
    response = beacon(TRACK, {"api_key": raw, **event()}, SITE)
    assert response.status_code == 201, response.content
    assert stored(org) == 1


def test_body_key_is_checked_like_a_header_key(org, browser_key):
    _, raw = browser_key
    assert beacon(BATCH, {"api_key": raw, "events": [event()]}, OTHER).status_code == 403
    assert beacon(BATCH, {"api_key": "upk_wrong", "events": [event()]}, SITE).status_code == 401
    assert beacon(BATCH, {"api_key": 42, "events": [event()]}, SITE).status_code == 401
    assert beacon(BATCH, {"events": [event()]}, SITE).status_code == 401
    assert stored(org) == 0


def test_malformed_body_without_a_header_key_is_a_401_not_a_500(browser_key):
    response = Client().generic("POST", BATCH, b"{not json", content_type="text/plain", HTTP_ORIGIN=SITE)
    assert response.status_code == 401
    assert response["Access-Control-Allow-Origin"] == SITE


def test_header_key_wins_and_the_body_key_is_not_an_event_field(org, browser_key, raw_api_key):
    _, browser_raw = browser_key
    response = beacon(TRACK, {"api_key": browser_raw, **event()}, None, HTTP_X_API_KEY=raw_api_key)
    assert response.status_code == 201
    assert stored(org) == 1


# --- Every ingestion route is wrapped -----------------------------------------------------------


def _callbacks(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from _callbacks(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_every_ingestion_route_answers_cors():
    ingestion = {
        route: callback
        for route, callback in _callbacks()
        if (getattr(callback, "cls", None) and issubclass(callback.cls, IngestAPIView))
        or callback.__module__.startswith("telemetry.compat")
    }
    assert {"api/v1/events/track", "api/v1/events/batch"} <= set(ingestion)
    unwrapped = [route for route, callback in ingestion.items() if not getattr(callback, "ingest_cors", False)]
    assert not unwrapped, f"ingestion routes without telemetry.cors.ingest_cors: {unwrapped}"


# --- The SDK-compatible routes ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/e/", "/batch/", "/i/v0/e/", "/v1/batch", "/v1/track"])
def test_sdk_routes_answer_preflights_like_the_native_ones(browser_key, path):
    assert preflight(path, SITE).status_code == 204
    assert preflight(path, OTHER).status_code == 403


def test_posthog_js_body_from_a_listed_and_an_unlisted_origin(org, browser_key):
    _, raw = browser_key
    body = [{"event": "export_pdf", "properties": {"token": raw, "distinct_id": "u-1"}, "uuid": str(uuid.uuid4())}]
    refused = beacon("/e/", body, OTHER)
    assert refused.status_code == 403 and refused["Access-Control-Allow-Origin"] == OTHER
    assert stored(org) == 0
    accepted = beacon("/e/", body, SITE)
    assert accepted.status_code == 200, accepted.content
    assert accepted["Access-Control-Allow-Origin"] == SITE
    assert stored(org) == 1


def test_segment_write_key_from_an_unlisted_origin_is_refused(org, browser_key):
    _, raw = browser_key
    body = {"writeKey": raw, "batch": [{"type": "track", "event": "search", "userId": "u-1"}]}
    assert beacon("/v1/batch", body, OTHER).status_code == 403
    assert beacon("/v1/batch", body, SITE).status_code == 200
    assert stored(org) == 1
