"""Redis down degrades, never 500s: a redis-server of the test's own on a free port serves the
cache, the throttles and the broker, then the test stops it (by PID) and every API and page
must still answer with the same figures, computed from the database; `/health` says
"degraded" naming Redis, and the outage is logged once."""

import logging
import socket
import time

import pytest
import redis
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from analytics.tests.pages_data import usage_make
from conftest import PASSWORD, client_for
from core import redis_backoff
from core.testing import ThrowAwayRedis, celery_broker, free_port, page_client
from tenants.models import User

pytestmark = pytest.mark.django_db

PAGES = ["analytics:dashboard", "analytics:features", "analytics:users", "analytics:retention", "insights:index"]
SUMMARY = "/api/v1/analytics/usage-summary"
INSIGHTS = "/api/v1/ai/usage-insights"
LOGIN = "/api/v1/auth/login"


def _use_redis(settings, url, **options):
    """Point the cache, REDIS_URL and the broker at `url`, as production settings do."""
    settings.REDIS_URL = url
    settings.CELERY_BROKER_URL = url
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 2, **options},
        }
    }


@pytest.fixture
def server(settings, tmp_path):
    redis_server = ThrowAwayRedis(tmp_path)
    _use_redis(settings, redis_server.url)
    yield redis_server
    redis_server.stop()


@pytest.fixture
def usage(org, analyst_user):
    usage_make(org, days=14, users=6)
    return org


def _outage_lines(caplog):
    return [r for r in caplog.records if r.name == redis_backoff.__name__ and "Redis unreachable" in r.getMessage()]


def test_everything_answers_from_the_database_while_redis_is_down(
    server, usage, analyst_user, anon_client, key_client, caplog
):
    analyst = client_for(analyst_user)
    # With Redis up: the figures are computed once and cached in Redis.
    summary = analyst.get(SUMMARY).json()
    insight = analyst.get(INSIGHTS).json()
    assert redis.Redis.from_url(server.url).dbsize() > 0

    server.stop()
    caplog.set_level(logging.WARNING)

    response = analyst.get(SUMMARY)
    assert response.status_code == 200, response.content
    assert response.json() == summary  # recomputed from the database, same figures
    response = analyst.get(INSIGHTS)
    assert response.status_code == 200, response.content
    # The narrative is the stored one, not a new one per request while the cache is gone.
    assert response.json() == insight

    response = anon_client.post(LOGIN, {"username": analyst_user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "bearer"

    pages = page_client(analyst_user)
    for name in PAGES:
        response = pages.get(reverse(name))
        assert response.status_code == 200, (name, response.status_code)
    assert b'data-testid="kpi-total_events"' in pages.get(reverse("analytics:dashboard")).content

    form = page_client(analyst_user)
    form.logout()
    response = form.post(reverse("login"), {"username": analyst_user.email, "password": PASSWORD})
    assert response.status_code == 302

    response = key_client.post("/api/v1/events/track", {"feature": "search", "user_id": "u-1"}, format="json")
    assert response.status_code == 201, response.content

    # One line for the whole outage, however many requests and callers met it.
    assert len(_outage_lines(caplog)) == 1


def test_health_says_degraded_naming_redis(server, anon_client):
    assert anon_client.get("/health").json() == {"status": "ok"}
    server.stop()
    response = anon_client.get("/health")
    assert response.status_code == 200  # the web process still serves: keep it in rotation
    body = response.json()
    assert body["status"] == "degraded" and body["degraded"] == ["redis"]
    assert "Redis is unreachable" in body["detail"]
    staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
    response = client_for(staff).get("/health/detailed")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert checks["redis"]["status"] == "error" and "Connection" in checks["redis"]["detail"]
    assert checks["cache"]["status"] == "error" and "every read misses" in checks["cache"]["detail"]
    assert checks["database"]["status"] == "ok"


def test_login_throttles_fail_open_while_redis_is_down(server, settings, anon_client, analyst_user, caplog):
    settings.LOGIN_ACCOUNT_FAILURES = 2
    server.stop()
    caplog.set_level(logging.WARNING)
    wrong = [
        anon_client.post(LOGIN, {"username": analyst_user.email, "password": "wrong"}, format="json").status_code
        for _ in range(4)
    ]
    assert wrong == [401] * 4
    response = anon_client.post(LOGIN, {"username": analyst_user.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert len(_outage_lines(caplog)) == 1


def test_outage_ends_with_one_line_and_caching_resumes(server, settings, usage, analyst_user, caplog, monkeypatch):
    monkeypatch.setattr(redis_backoff, "REDIS_RETRY_AFTER_SECONDS", 0.2)
    analyst = client_for(analyst_user)
    caplog.set_level(logging.WARNING)
    server.stop()
    assert analyst.get(SUMMARY).status_code == 200
    assert analyst.get(SUMMARY).status_code == 200
    assert len(_outage_lines(caplog)) == 1
    restarted = ThrowAwayRedis(server.dir, port=server.port)  # as after a restart
    try:
        time.sleep(0.3)  # past the back-off: the next call tries Redis again
        assert analyst.get(SUMMARY).status_code == 200
        assert sum("Redis reachable again" in r.getMessage() for r in caplog.records) == 1
        assert redis.Redis.from_url(restarted.url).dbsize() > 0  # cached again
        assert len(_outage_lines(caplog)) == 1
    finally:
        restarted.stop()


def test_a_hung_redis_costs_one_timeout_per_back_off_not_one_per_call(settings, usage, analyst_user):
    # A server that accepts connections and never answers: each call would wait for the
    # socket timeout. The dashboard reads a dozen cached figures.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        _use_redis(settings, f"redis://127.0.0.1:{hung.getsockname()[1]}/0", socket_timeout=0.5)
        pages = page_client(analyst_user)
        started = time.monotonic()
        assert pages.get(reverse("analytics:dashboard")).status_code == 200
        assert pages.get(reverse("analytics:features")).status_code == 200
        elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"{elapsed:.1f} s: the back-off did not hold"


def test_admin_run_task_with_the_broker_down_says_so(settings):

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.CELERY_BROKER_URL = dead
    staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
    task = PeriodicTask.objects.create(
        name="rollup today",
        task="analytics.rollup_today",
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS),
    )
    with celery_broker(dead):
        pages = page_client(staff)
        response = pages.post(
            "/admin/django_celery_beat/periodictask/",
            {"action": "run_tasks", "_selected_action": [task.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert b"selected tasks were not queued" in response.content


def test_the_cache_backend_turns_an_unreachable_redis_into_misses(settings, caplog):
    from django.core.cache import cache

    _use_redis(settings, f"redis://127.0.0.1:{free_port()}/0")
    caplog.set_level(logging.WARNING)
    assert cache.get("k") is None and cache.get("k", "default") == "default"
    assert cache.set("k", 1) is None
    assert cache.add("k", 1) is False and cache.touch("k") is False and cache.delete("k") is False
    assert cache.has_key("k") is False
    assert cache.get_many(["k", "l"]) == {}
    assert cache.set_many({"k": 1, "l": 2}) == ["k", "l"]
    assert cache.delete_many(["k"]) is None
    assert cache.get_or_set("k", lambda: "computed") == "computed"
    with pytest.raises(ValueError):
        cache.incr("k")
    assert len(_outage_lines(caplog)) == 1
