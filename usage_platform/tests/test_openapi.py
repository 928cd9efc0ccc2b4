"""The OpenAPI schema tells the truth: each operation lists the statuses its view can answer
(core/openapi.py), every error body is the one `Error` component, and real
responses of those statuses are documented for their operation and match their body."""

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from conftest import client_for, make_member
from tenants.models import Role

pytestmark = pytest.mark.django_db

ERROR_REF = {"$ref": "#/components/schemas/Error"}
V1 = "/api/v1"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def statuses(schema, method, path):
    return set(schema["paths"][path][method]["responses"])


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("get", "/health", {"200"}),
        ("get", f"{V1}/auth/me", {"200", "401", "503"}),
        ("post", f"{V1}/auth/login", {"200", "400", "401", "411", "413", "415", "429", "503"}),
        ("post", f"{V1}/auth/register", {"201", "400", "411", "413", "415", "429", "503"}),
        ("get", f"{V1}/org", {"200", "400", "401", "403", "404", "503"}),
        ("get", f"{V1}/org/members", {"200", "400", "401", "403", "404", "503"}),
        ("patch", f"{V1}/org/members/{{member_id}}", {"200", "400", "401", "403", "404", "411", "413", "415", "503"}),
        ("delete", f"{V1}/org/api-keys/{{key_id}}", {"204", "400", "401", "403", "404", "503"}),
        # 415: a Content-Encoding other than gzip.
        (
            "post",
            f"{V1}/events/track",
            {"200", "201", "202", "400", "401", "403", "404", "411", "413", "415", "429", "503"},
        ),
        ("post", f"{V1}/events/batch", {"200", "202", "400", "401", "403", "404", "411", "413", "415", "429", "503"}),
        ("get", f"{V1}/analytics/feature-usage", {"200", "400", "401", "403", "404", "503"}),
        ("get", f"{V1}/health/detailed", {"200", "401", "403", "503"}),
    ],
)
def test_statuses_follow_from_the_view(schema, method, path, expected):
    assert statuses(schema, method, path) == expected


def test_every_error_is_the_error_body_in_json(schema):
    for path, method, operation in operations(schema):
        for code, response in operation["responses"].items():
            if code < "400":
                continue
            assert set(response.get("content", {})) == {"application/json"}, (method, path, code)
            body = response["content"]["application/json"]["schema"]
            assert body == ERROR_REF or ERROR_REF in body.get("anyOf", []), (method, path, code)
            if code in ("429", "503") and body == ERROR_REF:
                assert response["headers"]["Retry-After"]["required"] is True, (method, path, code)
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["detail", "errors"]
    assert error["properties"]["errors"]["additionalProperties"] == {"type": "array", "items": {"type": "string"}}


def test_batch_400_is_per_item_errors_or_the_error_body(schema):
    body = schema["paths"][f"{V1}/events/batch"]["post"]["responses"]["400"]["content"]["application/json"]
    assert body["schema"] == {"anyOf": [{"$ref": "#/components/schemas/BatchRejected"}, ERROR_REF]}
    rejected = schema["components"]["schemas"]["BatchRejected"]
    assert {"detail", "accepted", "duplicates", "errors"} <= set(rejected["required"])


def test_bodies_are_json_and_the_auth_endpoints_take_forms_too(schema):
    for path, method, operation in operations(schema):
        content = set(operation.get("requestBody", {}).get("content", {}))
        if path == f"{V1}/auth/login":
            assert content == {"application/json", "application/x-www-form-urlencoded", "multipart/form-data"}
        elif path.startswith(f"{V1}/auth/") and content:
            assert content == {"application/json", "application/x-www-form-urlencoded"}, path
        elif content:
            assert content == {"application/json"}, (method, path)


def test_optional_query_parameters_may_be_blank(schema):
    # The parsers read `?start=` as "not given" (HTML forms send their empty fields).
    parameters = schema["paths"][f"{V1}/analytics/timeseries"]["get"]["parameters"]
    start = next(p for p in parameters if p["name"] == "start")
    assert start["allowEmptyValue"] is True and start["schema"]["format"] == "date"
    steps = next(p for p in schema["paths"][f"{V1}/analytics/funnel"]["get"]["parameters"] if p["name"] == "steps")
    assert steps["required"] is True and "allowEmptyValue" not in steps


def test_no_schema_warnings_anywhere():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    problems = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    GENERATOR_STATS.reset()
    assert not problems, "\n".join(problems)


# --- Real answers are documented -------------------------------------------------------------


def assert_error_body(body):
    assert set(body) == {"detail", "errors"}, body
    assert isinstance(body["detail"], str)
    assert all(isinstance(m, str) for messages in body["errors"].values() for m in messages), body


@pytest.fixture
def clients(admin_user, org, raw_api_key):
    key_client = client_for(admin_user)
    key_client.credentials(HTTP_X_API_KEY=raw_api_key)
    return {
        "admin": client_for(admin_user),
        "analyst": client_for(make_member(org, Role.ANALYST)),
        "anon": APIClient(),
        "key": key_client,
    }


LIVE = [
    # (client, method, url, body, content type, schema path, status)
    ("anon", "get", "/auth/me", None, None, "/auth/me", 401),
    ("admin", "get", "/auth/me", None, None, "/auth/me", 200),
    ("analyst", "get", "/org/members", None, None, "/org/members", 403),
    ("admin", "get", "/org/members?page=99", None, None, "/org/members", 200),
    ("admin", "get", "/org/members?page=abc", None, None, "/org/members", 400),
    ("admin", "get", "/org/members?page_size=abc", None, None, "/org/members", 400),
    ("admin", "get", "/org/members/999999", None, None, "/org/members/{member_id}", 404),
    ("admin", "patch", "/org", "name=Renamed", "application/x-www-form-urlencoded", "/org", 415),
    ("admin", "patch", "/org", '{"name": "' + "x" * (1024 * 1024) + '"}', "application/json", "/org", 413),
    ("admin", "get", "/analytics/feature-usage?format=xml", None, None, "/analytics/feature-usage", 400),
    ("admin", "get", "/analytics/usage-summary?format=csv", None, None, "/analytics/usage-summary", 400),
    ("admin", "get", "/analytics/usage-summary?gendr=M", None, None, "/analytics/usage-summary", 400),
    ("admin", "get", "/ai/chart-data?feature=x", None, None, "/ai/chart-data", 400),
    ("key", "post", "/events/track", '{"feature": "a", "org_id": 999999}', "application/json", "/events/track", 403),
    ("key", "post", "/events/batch", '{"events": []}', "application/json", "/events/batch", 400),
    ("key", "post", "/events/batch", "[1, 2]", "application/json", "/events/batch", 400),
    ("anon", "post", "/events/batch", "[]", "application/json", "/events/batch", 401),
    ("anon", "post", "/auth/login", "username=x", "text/plain", "/auth/login", 415),
]


@pytest.mark.parametrize(("who", "method", "url", "body", "content_type", "path", "status"), LIVE)
def test_real_answers_are_documented(schema, clients, who, method, url, body, content_type, path, status):
    kwargs = {"data": body, "content_type": content_type} if body is not None else {}
    response = getattr(clients[who], method)(V1 + url, **kwargs)
    assert response.status_code == status, response.content
    assert str(status) in statuses(schema, method, V1 + path)
    if status >= 400:
        payload = response.json()
        if set(payload) == {"detail", "accepted", "duplicates", "errors", "results"}:
            assert all(set(e) == {"index", "field", "message"} for e in payload["errors"])
            assert all(r["status"] in ("accepted", "duplicate", "rejected") for r in payload["results"])
        else:
            assert_error_body(payload)


def test_throttled_answer_is_documented_with_retry_after(schema, anon_client, settings, one_rate_window):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "1/min"}}
    body = {"username": "nobody@example.com", "password": "wrong-password-1"}
    anon_client.post(f"{V1}/auth/login", body, format="json")
    response = anon_client.post(f"{V1}/auth/login", body, format="json")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 0
    assert_error_body(response.json())
    assert "Retry-After" in schema["paths"][f"{V1}/auth/login"]["post"]["responses"]["429"]["headers"]


# Swagger UI groups operations by tag: one tag per area, never drf-spectacular's default
# ("api", the first segment of every path).
AREA_OF_PATH = (
    (f"{V1}/events/", "ingestion"),
    (f"{V1}/analytics/", "analytics"),
    (f"{V1}/ai/", "insights"),
    (f"{V1}/auth/", "auth"),
    (f"{V1}/org/webhooks", "webhooks"),
    (f"{V1}/org/segments", "segments"),
    (f"{V1}/org", "organisation"),
    (f"{V1}/health", "health"),
    ("/health", "health"),
)


def test_every_operation_is_tagged_with_its_area(schema):
    for path, method, operation in operations(schema):
        area = next((tag for prefix, tag in AREA_OF_PATH if path.startswith(prefix)), None)
        tags = operation.get("tags", [])
        assert len(tags) == 1 and tags != ["api"], f"{method.upper()} {path}: {tags}"
        # Alert rules (under /org/) may be grouped on their own or with the organisation.
        if area is not None and not path.startswith(f"{V1}/org/alert"):
            assert tags == [area], f"{method.upper()} {path}: {tags}"


# Ingestion takes what the SDKs add to the query (`?ver=`, `?_=`); sign-in is no organisation's.
NOT_STRICT = (f"{V1}/events/", f"{V1}/auth/", f"{V1}/health")


def test_strict_operations_document_exactly_the_parameters_they_take(schema):
    """Every organisation operation (figures, settings, lists) is strict (core.strict_query):
    its schema lists the query parameters it takes (with `format`) and no other, as
    schemathesis reads it."""
    import re

    from django.urls import resolve

    checked = 0
    for path, method, operation in operations(schema):
        if not path.startswith(f"{V1}/") or path.startswith(NOT_STRICT):
            continue
        view = resolve(re.sub(r"\{[^}]+\}", "1", path)).func.cls
        assert getattr(view, "strict_query", False), (path, view)
        handler = getattr(view, method)
        documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        assert documented == {*getattr(handler, "query_names", ()), "format"}, (path, method)
        assert "400" in operation["responses"], (path, method)
        checked += 1
    assert checked >= 40


# --- Every field of a real answer is documented ----------------------------------------------


def _resolved(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def undocumented(schema, node, value, where="$"):
    """The paths of `value`'s keys that `node` (a schema) does not declare, recursively."""
    node = _resolved(schema, node)
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            return min((undocumented(schema, sub, value, where) for sub in node[key]), key=len)
    if isinstance(value, list):
        items = node.get("items", {})
        return [path for item in value for path in undocumented(schema, items, item, f"{where}[]")]
    if not isinstance(value, dict):
        return []
    properties = node.get("properties")
    if properties is None:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return [p for k, v in value.items() for p in undocumented(schema, extra, v, f"{where}.{k}")]
        return []
    missing = [f"{where}.{key}" for key in value if key not in properties]
    return missing + [
        path
        for key, item in value.items()
        if key in properties
        for path in undocumented(schema, properties[key], item, f"{where}.{key}")
    ]


ANSWERED = [
    "/analytics/usage-summary?breakdown=feature",
    "/analytics/usage-summary?breakdown=gender",
    "/analytics/feature-usage?breakdown=event_type",
    "/analytics/timeseries?metric=active_users&breakdown=feature",
    "/analytics/top-users",
    "/analytics/user-activity",
    "/analytics/retention",
    "/analytics/funnel?steps=search,export",
    "/analytics/accounts",
    "/ai/chart-data",
    "/ai/usage-insights",
]


@pytest.mark.parametrize("url", ANSWERED)
def test_every_field_of_an_answer_is_documented(schema, admin_client, org, url):
    # One shared serializer field used under two names documented only the last of them
    # (the summary's KPIs but one, the chart data's metrics).
    from datetime import timedelta

    from analytics.rollup import rollup_range
    from analytics.tests.factories import random_usage
    from core.days import today

    first = today() - timedelta(days=20)
    random_usage(org, first, 20)
    rollup_range(first, today(), org)
    response = admin_client.get(V1 + url)
    assert response.status_code == 200, response.content
    operation = schema["paths"][V1 + url.split("?")[0]]["get"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert undocumented(schema, body, response.json()) == []
