"""`/health` for load balancers (anyone), `/health/detailed` for platform staff only."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from conftest import PASSWORD, client_for
from telemetry import tasks
from telemetry.models import DirtyDay
from telemetry.services import partitions
from telemetry.services.partitions import month_start, months_add
from telemetry.tests.helpers import BATCH, event, post
from tenants.models import User
from usage_platform import health

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only (SQLite keeps one table)"
)


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


# --- Late data and the default partition ---------------------------------------------------


def _mark(org, days_ago, waited):
    """A late-data mark of the day `days_ago` days back, set `waited` ago."""
    now = datetime.now(UTC)
    return DirtyDay.objects.create(organization=org, date=now.date() - timedelta(days=days_ago), marked_at=now - waited)


def _failing(body):
    return sorted(name for name, check in body["checks"].items() if check["status"] != "ok")


def test_detailed_shows_no_late_data_when_no_mark_waits(staff_client, filesystem_broker):
    check = staff_client.get("/health/detailed").json()["checks"]["late_data"]
    assert check["status"] == "ok"
    assert check["detail"] == {"marks": 0, "oldest_day": None, "oldest_marked_at": None, "oldest_wait_seconds": None}


def test_detailed_shows_the_late_data_marks_waiting_for_the_hourly_rollup(
    staff_client, filesystem_broker, org, other_org
):
    _mark(org, 9, timedelta(minutes=5))
    longest = _mark(other_org, 2, timedelta(minutes=50))
    response = staff_client.get("/health/detailed")
    assert response.status_code == 200, response.json()
    check = response.json()["checks"]["late_data"]
    assert check["status"] == "ok"
    detail = check["detail"]
    # The oldest day and the longest wait are those of different marks: each is shown.
    assert detail["marks"] == 2
    assert detail["oldest_day"] == (datetime.now(UTC).date() - timedelta(days=9)).isoformat()
    assert datetime.fromisoformat(detail["oldest_marked_at"]) == longest.marked_at
    assert 50 * 60 <= detail["oldest_wait_seconds"] < 55 * 60


def test_a_late_data_mark_the_hourly_rollup_missed_degrades_the_check(staff_client, filesystem_broker, org):
    _mark(org, 3, timedelta(minutes=10))
    _mark(org, 4, health.LATE_DATA_MAX_WAIT + timedelta(minutes=1))
    response = staff_client.get("/health/detailed")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert _failing(body) == ["late_data"]
    message = body["checks"]["late_data"]["detail"]
    assert message.startswith("LateDataWaiting: 2 late-data mark(s) waiting")
    assert (datetime.now(UTC).date() - timedelta(days=4)).isoformat() in message
    assert "analytics.rollup_today" in message


def test_the_marks_of_an_organisation_being_deleted_are_not_waiting_for_the_rollup(
    staff_client, filesystem_broker, org, other_org
):
    """The rollup skips an organisation being deleted (its deletion takes its marks): an old
    mark of one is no backlog, where it read as "the hourly rollup has not taken them"."""
    _mark(other_org, 4, health.LATE_DATA_MAX_WAIT + timedelta(minutes=1))
    _mark(org, 2, timedelta(minutes=5))
    type(other_org).objects.filter(pk=other_org.pk).update(deletion_requested_at=datetime.now(UTC))
    response = staff_client.get("/health/detailed")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["late_data"]["detail"]["marks"] == 1


@pytest.mark.skipif(connection.vendor == "postgresql", reason="PostgreSQL partitions the events table")
def test_detailed_says_sqlite_has_no_default_partition(staff_client, filesystem_broker):
    check = staff_client.get("/health/detailed").json()["checks"]["events_default_partition"]
    assert check["status"] == "ok"
    assert check["detail"] == "not partitioned"


def _old_month_events(key_client, n):
    """`n` late events of a month seven months back, which has no partition yet."""
    month = months_add(month_start(datetime.now(UTC)), -7)
    assert month not in partitions.event_partitions()
    at = datetime(month.year, month.month, 15, 12, tzinfo=UTC).isoformat()
    response = post(key_client, BATCH, {"events": [event(timestamp=at) for _ in range(n)]})
    assert response.json()["accepted"] == n, response.content


@postgres_only
def test_rows_in_the_default_partition_are_shown_until_the_nightly_job_moves_them(
    staff_client, filesystem_broker, key_client
):
    """A late event of an old month waits in the default partition until the nightly job:
    the normal course of a backfill, shown with what moves it, not a 503 that would take a
    healthy node out of a balancer."""
    check = staff_client.get("/health/detailed").json()["checks"]["events_default_partition"]
    assert check["status"] == "ok"
    assert check["detail"] == {"partition": partitions.DEFAULT, "rows": 0}

    _old_month_events(key_client, 1)
    response = staff_client.get("/health/detailed")
    assert response.status_code == 200
    body = response.json()
    assert _failing(body) == []
    assert body["checks"]["late_data"]["detail"]["marks"] == 1
    detail = body["checks"]["events_default_partition"]["detail"]
    assert detail["rows"] == 1 and "partitions_prepare" in detail["note"]

    tasks.partitions_prepare.apply().get()
    check = staff_client.get("/health/detailed").json()["checks"]["events_default_partition"]
    assert check["status"] == "ok" and check["detail"] == {"partition": partitions.DEFAULT, "rows": 0}


@postgres_only
def test_the_default_partition_is_counted_no_further_than_the_limit(
    staff_client, filesystem_broker, key_client, monkeypatch
):
    monkeypatch.setattr(health, "DEFAULT_PARTITION_COUNT_UP_TO", 2)
    _old_month_events(key_client, 5)
    assert partitions.default_partition_rows(up_to=2) == 3  # one past the limit says "more"
    assert partitions.default_partition_rows(up_to=10) == 5
    detail = staff_client.get("/health/detailed").json()["checks"]["events_default_partition"]["detail"]
    assert detail["rows"] == "2+"
