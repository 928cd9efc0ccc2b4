"""`/health` for load balancers (anyone), `/health/detailed` for platform staff only."""

import pytest

from conftest import PASSWORD, client_for
from tenants.models import User

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db):
    return client_for(User.objects.create_superuser(email="staff@platform.example", password=PASSWORD))


@pytest.fixture
def filesystem_broker(settings, tmp_path):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_DIR = tmp_path / "broker"


@pytest.mark.parametrize("path", ["/health", "/api/v1/health"])
def test_liveness_for_anyone(anon_client, path):
    response = anon_client.get(path)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/health", "/api/v1/health"])
def test_liveness_ignores_bad_credentials(anon_client, path):
    anon_client.credentials(HTTP_AUTHORIZATION="Bearer garbage")
    assert anon_client.get(path).status_code == 200


@pytest.mark.parametrize("path", ["/health/detailed", "/api/v1/health/detailed"])
def test_detailed_refuses_anonymous(anon_client, path):
    response = anon_client.get(path)
    assert response.status_code == 401
    assert set(response.json()) == {"detail", "errors"}


@pytest.mark.parametrize("path", ["/health/detailed", "/api/v1/health/detailed"])
def test_detailed_refuses_non_staff_even_org_admins(admin_client, path):
    response = admin_client.get(path)
    assert response.status_code == 403
    assert set(response.json()) == {"detail", "errors"}


@pytest.mark.parametrize("path", ["/health/detailed", "/api/v1/health/detailed"])
def test_detailed_for_staff(staff_client, filesystem_broker, path):
    response = staff_client.get(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    for name in ("database", "cache", "celery_broker", "ingest_queue", "rollup"):
        assert checks[name]["status"] == "ok", checks[name]
        assert isinstance(checks[name]["ms"], float | int)
    assert checks["database"]["detail"] in ("sqlite", "postgresql")
    assert checks["celery_broker"]["detail"]["transport"] == "filesystem"


def test_detailed_reports_a_broken_dependency_as_503(staff_client, settings):
    # Nothing listens on this port (our range is 8100-8199 and this one is never started).
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:8199/0"
    response = staff_client.get("/health/detailed")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["celery_broker"]["status"] == "error"
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.redis
def test_detailed_with_redis(staff_client, settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CELERY_BROKER_URL = redis_url
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    response = staff_client.get("/health/detailed")
    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert checks["cache"]["detail"] == "RedisCache"
    assert checks["celery_broker"]["detail"]["transport"] == "redis"
    assert checks["ingest_queue"]["detail"]["stream_length"] == 0
