"""Bad input through every SDK-compatible route answers a 4xx JSON error, never a 500 or an
HTML page: corrupt gzip, gzip bombs, huge bodies, non-JSON, wrong or missing keys, unknown
encodings, wrong shapes. Segment's routes add `code` and `message` (Rudder reads them)."""

import base64
import gzip
import zlib

import orjson
import pytest
from rest_framework.test import APIClient

from telemetry.models import UsageEvent

pytestmark = pytest.mark.django_db

POSTHOG_ROUTES = ["/batch/", "/capture/", "/e/", "/i/v0/e/"]
SEGMENT_ROUTES = ["/v1/batch", "/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias"]
ROUTES = POSTHOG_ROUTES + SEGMENT_ROUTES


def _valid_body(route, key):
    if route in POSTHOG_ROUTES:
        return {"api_key": key, "batch": [{"event": "search", "distinct_id": "u1"}]}
    message = {"type": "track", "event": "search", "userId": "u1", "messageId": "m-1"}
    return {"batch": [message]} if route == "/v1/batch" else message


def _send(route, body: bytes, key, **headers):
    client = APIClient()
    extra = dict(headers)
    if route in SEGMENT_ROUTES and key:
        extra.setdefault("HTTP_AUTHORIZATION", "Basic " + base64.b64encode(f"{key}:".encode()).decode())
    return client.generic("POST", route, body, content_type=extra.pop("content_type", "application/json"), **extra)


def _assert_json_error(resp, status, route):
    assert resp.status_code == status, (route, resp.status_code, resp.content[:300])
    assert resp["Content-Type"].startswith("application/json"), route
    body = resp.json()
    assert isinstance(body["detail"], str) and body["detail"]
    # The error shape, or a batch's answer when no message was valid (`errors` per message).
    assert isinstance(body["errors"], dict) or isinstance(body["results"], list)
    if route in SEGMENT_ROUTES:
        assert isinstance(body["code"], str) and body["message"] == body["detail"]
    return body


@pytest.mark.parametrize("route", ROUTES)
def test_corrupt_gzip_answers_400(route, raw_api_key, org):
    resp = _send(route, b"\x1f\x8bnot really gzip at all", raw_api_key, HTTP_CONTENT_ENCODING="gzip")
    body = _assert_json_error(resp, 400, route)
    assert "gzip" in body["detail"]


@pytest.mark.parametrize("route", ROUTES)
def test_truncated_gzip_answers_400(route, raw_api_key):
    whole = gzip.compress(orjson.dumps(_valid_body(route, raw_api_key)))
    resp = _send(route, whole[: len(whole) // 2], raw_api_key, HTTP_CONTENT_ENCODING="gzip")
    _assert_json_error(resp, 400, route)


@pytest.mark.parametrize("route", ROUTES)
def test_gzip_bomb_answers_413_without_inflating_it(route, raw_api_key, settings):
    settings.INGEST_MAX_BODY_BYTES = 1024 * 1024
    bomb = gzip.compress(b"[" + b" " * (50 * 1024 * 1024) + b"]", compresslevel=9)
    assert len(bomb) < 100 * 1024
    resp = _send(route, bomb, raw_api_key, HTTP_CONTENT_ENCODING="gzip")
    _assert_json_error(resp, 413, route)


@pytest.mark.parametrize("route", ROUTES)
def test_body_over_the_limit_answers_413(route, raw_api_key, settings):
    settings.INGEST_MAX_BODY_BYTES = 64 * 1024
    resp = _send(route, b"[" + b" " * (65 * 1024) + b"]", raw_api_key)
    _assert_json_error(resp, 413, route)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", [b"", b"   ", b"not json", b'{"batch": [', b"\xff\xfe\x00"])
def test_non_json_answers_400(route, body, raw_api_key):
    _assert_json_error(_send(route, body, raw_api_key), 400, route)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", [b"12", b'"text"', b"null", b"[]", b"{}", b'{"batch": 5}'])
def test_json_of_the_wrong_shape_answers_4xx(route, body, raw_api_key, org):
    # Without a key in the body PostHog's routes cannot tell whose it is (401); the others
    # say what the body should hold (400).
    resp = _send(route, body, raw_api_key)
    assert resp.status_code in (400, 401), (route, body, resp.content)
    _assert_json_error(resp, resp.status_code, route)
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize("route", ROUTES)
def test_wrong_key_answers_401(route, org):
    body = _valid_body(route, "upk_" + "x" * 32)
    resp = _send(route, orjson.dumps(body), "upk_" + "x" * 32)
    _assert_json_error(resp, 401, route)
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize("route", ROUTES)
def test_missing_key_answers_401_saying_where_to_put_it(route, org):
    body = _valid_body(route, None)
    body.pop("api_key", None)
    resp = _send(route, orjson.dumps(body), None)
    detail = _assert_json_error(resp, 401, route)["detail"]
    assert ("api_key" in detail) if route in POSTHOG_ROUTES else ("Basic" in detail)


@pytest.mark.parametrize("route", ROUTES)
def test_revoked_key_answers_401(route, api_key_pair, org):
    from tenants import services as tenant_services

    row, raw = api_key_pair
    tenant_services.api_key_revoke(org=org, key_id=row.pk)
    resp = _send(route, orjson.dumps(_valid_body(route, raw)), raw)
    _assert_json_error(resp, 401, route)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("encoding", ["br", "deflate", "compress"])
def test_unsupported_content_encoding_answers_415(route, encoding, raw_api_key):
    resp = _send(route, zlib.compress(b"{}"), raw_api_key, HTTP_CONTENT_ENCODING=encoding)
    _assert_json_error(resp, 415, route)


@pytest.mark.parametrize("route", POSTHOG_ROUTES)
@pytest.mark.parametrize(
    "query, body, content_type",
    [
        ("?compression=lz64", b"N4Ig", "application/x-www-form-urlencoded"),
        ("", b"data=%%%not-base64%%%", "application/x-www-form-urlencoded"),
        ("", b"data=", "application/x-www-form-urlencoded"),
        ("", b"other=1", "application/x-www-form-urlencoded"),
        ("?compression=gzip-js", b"plain text, not gzip", "text/plain"),
        ("", "data=\u00e9".encode(), "application/x-www-form-urlencoded"),
    ],
)
def test_posthog_bad_forms_and_compressions_answer_4xx(route, query, body, content_type, raw_api_key):
    resp = _send(route + query, body, raw_api_key, content_type=content_type)
    assert resp.status_code in (400, 415), resp.content
    _assert_json_error(resp, resp.status_code, route)


@pytest.mark.parametrize("route", ROUTES)
def test_other_methods_answer_json(route, raw_api_key):
    _assert_json_error(APIClient().get(route), 401, route)
    _assert_json_error(APIClient().get(route, HTTP_X_API_KEY=raw_api_key), 405, route)
    _assert_json_error(
        APIClient().put(route, b"{}", content_type="application/json", HTTP_X_API_KEY=raw_api_key), 405, route
    )


@pytest.mark.parametrize("route", ROUTES)
def test_more_than_the_batch_limit_answers_413(route, raw_api_key, settings):
    settings.INGEST_MAX_BATCH = 3
    if route in POSTHOG_ROUTES:
        body = {"api_key": raw_api_key, "batch": [{"event": "e", "distinct_id": "u"}] * 4}
    elif route == "/v1/batch":
        body = {"batch": [{"type": "track", "event": "e", "userId": "u"}] * 4}
    else:
        pytest.skip("one message per request")
    _assert_json_error(_send(route, orjson.dumps(body), raw_api_key), 413, route)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    "message",
    [
        {"event": "", "distinct_id": "u"},
        {"event": 5, "distinct_id": "u"},
        {"event": "e", "properties": [1, 2]},
        {"event": "e", "distinct_id": {"deep": True}},
        {"event": "e", "distinct_id": "u", "timestamp": "yesterday"},
        {"event": "e", "distinct_id": "u", "uuid": "nope"},
        {"event": "e", "$set": {"email": "not an e-mail"}, "distinct_id": "u"},
        {"event": "$groupidentify", "properties": {"$group_type": "company", "$group_key": ["x"]}},
        # More digits than int() converts (4,300), and than a float holds: refused, not a 500.
        {"event": "e", "distinct_id": "u", "$set": {"age": "9" * 5000}},
        {"event": "e", "distinct_id": "u", "$set": {"age": "9" * 400}},
    ],
)
def test_invalid_messages_answer_400_naming_the_field(route, message, raw_api_key, org):
    if route in SEGMENT_ROUTES:
        pytest.skip("PostHog shapes")
    resp = _send(route, orjson.dumps({"api_key": raw_api_key, "batch": [message]}), raw_api_key)
    body = _assert_json_error(resp, 400, route)
    assert body["results"][0]["status"] == "rejected" and body["errors"][0]["index"] == 0
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize("route", SEGMENT_ROUTES)
@pytest.mark.parametrize(
    "message",
    [
        {"type": "launch", "event": "e", "userId": "u"},
        {"type": "track", "event": "", "userId": "u"},
        {"type": "track", "event": "e", "userId": "u", "properties": "x"},
        {"type": "track", "event": "e", "userId": "u", "context": [1]},
        {"type": "track", "event": "e", "userId": ["u"]},
        {"type": "track", "event": "e", "userId": "u", "timestamp": "soon"},
        {"type": "identify", "userId": "u", "traits": {"age": "old"}},
        {"type": "identify", "userId": "u", "traits": {"age": "9" * 5000}},
        {"type": "group", "userId": "u", "groupId": {"x": 1}},
    ],
)
def test_invalid_segment_messages_answer_400_with_code_and_message(route, message, raw_api_key, org):
    call = route.rsplit("/", 1)[1]
    if call != "batch" and message["type"] not in (call, "launch"):
        pytest.skip("another call type")
    if call != "batch" and message["type"] == "launch":
        pytest.skip("the route names the call")
    body = {"batch": [message]} if call == "batch" else message
    resp = _send(route, orjson.dumps(body), raw_api_key)
    data = _assert_json_error(resp, 400, route)
    assert data["results"][0]["status"] == "rejected"
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize("route", ["/e/", "/i/v0/e/"])
@pytest.mark.parametrize("sent_at_ms", ["9" * 400, "9" * 5000])
def test_posthog_js_send_time_of_too_many_digits_is_ignored(route, sent_at_ms, raw_api_key, org):
    """posthog-js's `?_=` (its clock, in milliseconds) of more digits than a time has is no
    clock: the event is stored as sent, not a 500."""
    event = {"event": "e", "distinct_id": "u", "properties": {"token": raw_api_key}}
    resp = APIClient().generic("POST", f"{route}?_={sent_at_ms}", orjson.dumps([event]), content_type="text/plain")
    assert resp.status_code == 200, resp.content[:300]
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize(
    "path",
    ["/flags/?v=2", "/decide/?v=3", "/array/upk_x/config", "/e/extra", "/s/", "/v1/", "/v1/unknown", "/v1/batch/x"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_paths_under_the_ingestion_routes_answer_a_json_404(path, method, raw_api_key):
    # posthog-js asks for flags and remote config, which are PostHog's own: a JSON 404, not
    # the site's HTML page (and Rudder's `code`/`message`).
    resp = APIClient().generic(method, path, b"{}", content_type="application/json")
    assert resp.status_code == 404, resp.content[:200]
    assert resp["Content-Type"].startswith("application/json")
    body = resp.json()
    assert "No ingestion route" in body["detail"] and body["code"] == "not_found" and body["message"] == body["detail"]


def test_a_page_reads_the_json_404_of_an_unknown_ingestion_path(org, admin_user):
    from tenants import services as tenant_services

    site = "https://app.example"
    tenant_services.api_key_create(org=org, name="site", created_by=admin_user, allowed_origins=[site])
    client = APIClient()
    preflight = client.options(
        "/flags/?v=2",
        HTTP_ORIGIN=site,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert preflight.status_code == 204
    resp = client.generic("POST", "/flags/?v=2", b"{}", content_type="application/json", HTTP_ORIGIN=site)
    assert resp.status_code == 404 and resp["Access-Control-Allow-Origin"] == site
