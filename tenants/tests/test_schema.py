"""The OpenAPI schema and Swagger UI are served, and the tenants views document themselves
without drf-spectacular warnings (so the generated clients get real types)."""

import pytest
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

# Paths quoted in a warning message: ours start with one of these (the webhook paths under
# /api/v1/org/ belong to the insights app).
OUR_PATHS = (
    "/api/v1/auth/",
    "/api/v1/org'",
    "/api/v1/org/members",
    "/api/v1/org/invitations",
    "/api/v1/org/api-keys",
    "/api/v1/health",
    "/health",
)
OUR_SOURCES = ("tenants/", "usage_platform/health", "usage_platform/pagination")


def test_schema_endpoint(anon_client):
    response = anon_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/auth/accept-invite",
        "/api/v1/org",
        "/api/v1/org/members",
        "/api/v1/org/members/{member_id}",
        "/api/v1/org/invitations",
        "/api/v1/org/invitations/{invitation_id}",
        "/api/v1/org/api-keys",
        "/api/v1/org/api-keys/{key_id}",
    ):
        assert path in paths, path
    schemes = schema["components"]["securitySchemes"]
    assert schemes["JWTAuth"]["scheme"] == "bearer"
    assert schemes["ApiKeyAuth"]["name"] == "X-API-Key"
    login = paths["/api/v1/auth/login"]["post"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(login["requestBody"]["content"])
    members = paths["/api/v1/org/members"]["get"]
    page = members["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(schema["components"]["schemas"][page]["properties"]) == {"count", "next", "previous", "results"}
    parameters = paths["/api/v1/org/members/{member_id}"]["patch"]["parameters"]
    member_id = next(p for p in parameters if p["name"] == "member_id")
    assert member_id["schema"]["type"] == "integer"


def test_swagger_ui(anon_client):
    response = anon_client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    # Served from our static files (drf-spectacular-sidecar), never a CDN.
    assert b"cdn.jsdelivr" not in response.content
    assert b"https://" not in response.content


def test_no_schema_warnings_for_tenants_views():
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        SchemaGenerator().get_schema(request=None, public=True)
    problems = [
        msg
        for msg in [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
        if any(src in msg for src in OUR_SOURCES) or any(f"'{p}" in msg for p in OUR_PATHS)
    ]
    GENERATOR_STATS.reset()
    assert not problems, "\n".join(problems)
