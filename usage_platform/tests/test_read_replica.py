"""Read routing against a real streaming standby: a throw-away PostgreSQL primary (initdb) and
a `pg_basebackup -R` standby of it on another port, both started for this module and stopped
by their postmasters' PIDs (pg_ctl) at the end; the shared servers are never touched.

The Django "default" and "replica" aliases are pointed at the two for the module (and put
back after), the schema migrated on the primary and streamed to the standby. Each test asserts
which server answered each read: the statements recorded per alias, and `pg_is_in_recovery()`
on each alias's connection. Lag is made certain by pausing the standby's replay.

PostgreSQL only (.ci/run's PostgreSQL pass); a SQLite run skips it."""

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import close_old_connections, connections
from django.urls import reverse
from rest_framework.test import APIClient

from analytics.params import today
from conftest import PASSWORD, client_for, make_member, make_org
from core import db_routing
from core.db_routing import PRIMARY, REPLICA
from core.testing import page_client, queries_by_alias
from core.testing_servers import PostgresCluster
from insights import tasks as insight_tasks
from tenants import services as tenant_services
from tenants.models import Role, User

pytestmark = [
    pytest.mark.replica,
    pytest.mark.skipif(
        not django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="a streaming standby is PostgreSQL's: runs in the PostgreSQL pass (DATABASE_URL=postgres://…)",
    ),
]

FIGURE_TABLES = ("analytics_", "insights_", "telemetry_")
SUMMARY = "/api/v1/analytics/usage-summary"


@dataclass
class Servers:
    primary: PostgresCluster
    standby: PostgresCluster


def _point(alias: str, cluster: PostgresCluster, name: str) -> None:
    connection = connections[alias]
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(cluster.port), NAME=name, USER="postgres", PASSWORD="")


@pytest.fixture(scope="module")
def servers(django_db_blocker):
    saved = {alias: dict(connections[alias].settings_dict) for alias in (PRIMARY, REPLICA)}
    primary = PostgresCluster().start()
    standby = None
    try:
        primary.execute("CREATE DATABASE platform")
        with django_db_blocker.unblock():
            _point(PRIMARY, primary, "platform")
            ContentType.objects.clear_cache()
            call_command("migrate", interactive=False, verbosity=0)
            standby = PostgresCluster(replica_of=primary).start()
            standby.wait_streaming(primary)
            _point(REPLICA, standby, "platform")
            yield Servers(primary, standby)
    finally:
        for alias, values in saved.items():
            connections[alias].close()
            connections[alias].settings_dict.clear()
            connections[alias].settings_dict.update(values)
        ContentType.objects.clear_cache()
        if standby is not None:
            standby.remove()
        primary.remove()


@pytest.fixture
def routing(servers, settings, django_db_blocker):
    settings.DATABASE_READ_REPLICA = True
    settings.DATABASE_REPLICA_PIN_SECONDS = 120
    with django_db_blocker.unblock():
        yield servers


@dataclass
class Tenant:
    org: object
    admin: APIClient
    analyst: APIClient
    analyst_user: User
    key: APIClient


def tenant(name: str) -> Tenant:
    admin = make_org(name)
    analyst = make_member(admin.organization, Role.ANALYST)
    key = APIClient()
    key.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_services.api_key_create(org=admin.organization, name='k')[1]}")
    return Tenant(admin.organization, client_for(admin), client_for(analyst), analyst, key)


def send_events(client: APIClient, count: int, feature: str = "search") -> None:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    events = [
        {"feature": feature, "user_id": f"u-{i % 5}", "session_duration": 30, "timestamp": now} for i in range(count)
    ]
    response = client.post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code in (200, 201), response.content
    assert response.json()["accepted"] == count


def aggregate(client: APIClient) -> None:
    response = client.post(f"/api/v1/analytics/aggregate/run?date={today()}")
    assert response.status_code == 200, response.content


def figures(queries):
    return [sql for sql in queries if any(table in sql for table in FIGURE_TABLES)]


def in_recovery(alias: str) -> bool:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        return cursor.fetchone()[0]


def total_events(client: APIClient) -> int:
    response = client.get(SUMMARY)
    assert response.status_code == 200, response.content
    return response.json()["total_events"]["value"]


def test_figures_are_read_on_the_standby(routing):
    acme = tenant("Standby Reads")
    send_events(acme.key, 40)
    aggregate(acme.admin)
    routing.standby.wait_replayed(routing.primary)
    with queries_by_alias(PRIMARY, REPLICA) as served:
        assert total_events(acme.analyst) == 40
        assert acme.analyst.get("/api/v1/analytics/top-users").status_code == 200
        assert page_client(acme.analyst_user).get(reverse("analytics:features")).status_code == 200
    assert figures(served[REPLICA]) and figures(served[PRIMARY]) == []
    assert in_recovery(REPLICA) is True and in_recovery(PRIMARY) is False


def test_reads_right_after_aggregate_run_come_from_the_primary_while_the_standby_lags(routing):
    acme = tenant("Read Your Writes")
    staff = client_for(User.objects.create_superuser(email="staff@replica.example", password=PASSWORD))
    routing.standby.wait_replayed(routing.primary)
    routing.standby.replay_pause()
    try:
        send_events(acme.key, 25)
        aggregate(acme.admin)
        with queries_by_alias(PRIMARY, REPLICA) as served:
            assert total_events(acme.admin) == 25  # the admin who ran it
            rows = acme.analyst.get("/api/v1/analytics/feature-usage").json()["results"]  # a colleague
            insight_tasks.after_rollup(acme.org.pk)  # the detectors the rollup hands over to
        assert sum(row["events"] for row in rows) == 25
        assert figures(served[REPLICA]) == [] and figures(served[PRIMARY])
        # The standby really is behind: it has not got the organisation's rollup.
        with connections[REPLICA].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM analytics_dailyorgusage WHERE organization_id = %s", [acme.org.pk])
            assert cursor.fetchone()[0] == 0
        lagging = staff.get("/health/detailed").json()["checks"]["replica"]
        assert lagging["status"] == "ok", lagging
        assert lagging["detail"]["bytes_behind"] > 0 and lagging["detail"]["lag_seconds"] > 0, lagging
    finally:
        routing.standby.replay_resume()
    routing.standby.wait_replayed(routing.primary)
    with queries_by_alias(PRIMARY, REPLICA) as served:
        points = acme.analyst.get("/api/v1/analytics/timeseries?metric=events").json()["points"]
    assert points[-1]["value"] == 25
    assert figures(served[REPLICA]) and figures(served[PRIMARY]) == []
    caught_up = staff.get("/health/detailed").json()["checks"]["replica"]["detail"]
    assert caught_up["bytes_behind"] == 0 and caught_up["lag_seconds"] == 0, caught_up


def test_a_stopped_standby_sends_reads_to_the_primary_logged_once(routing, settings, caplog):
    settings.DATABASE_REPLICA_RETRY_SECONDS = 0.5
    acme = tenant("Standby Down")
    send_events(acme.key, 12)
    aggregate(acme.admin)
    routing.standby.wait_replayed(routing.primary)
    assert total_events(acme.analyst) == 12  # on the standby: its connection is open
    staff = client_for(User.objects.create_superuser(email="staff-down@replica.example", password=PASSWORD))
    caplog.set_level(logging.WARNING, logger="core.db_routing")
    routing.standby.stop("fast")
    # What a server does between two requests (Django's request_started signal, which the test
    # client leaves out): the kept connection to the standby is health-checked at the next use.
    close_old_connections()
    try:
        with queries_by_alias(PRIMARY, REPLICA) as served:
            assert acme.analyst.get("/api/v1/analytics/feature-usage").status_code == 200
            assert page_client(acme.analyst_user).get(reverse("analytics:dashboard")).status_code == 200
            time.sleep(0.6)  # past the back-off: tried again, still down, not logged again
            assert acme.analyst.get("/api/v1/analytics/timeseries").json()["points"][-1]["value"] == 12
        assert figures(served[PRIMARY])
        health = staff.get("/health/detailed")
        assert health.status_code == 503 and health.json()["checks"]["replica"]["status"] == "error"
        assert health.json()["checks"]["database"]["status"] == "ok"
        down = [r.getMessage() for r in caplog.records if r.name == "core.db_routing" and r.levelno >= logging.WARNING]
        assert len(down) == 1 and down[0].startswith("read replica unreachable"), down
    finally:
        routing.standby.start()
    routing.standby.wait_streaming(routing.primary)
    time.sleep(0.6)
    caplog.clear()
    with queries_by_alias(PRIMARY, REPLICA) as served:
        assert acme.analyst.get("/api/v1/analytics/top-users").status_code == 200
    assert figures(served[REPLICA]) and figures(served[PRIMARY]) == []
    assert [r.getMessage()[:28] for r in caplog.records if r.name == "core.db_routing"] == [
        "read replica reachable again"
    ]
    assert not db_routing.replica_outage()


def test_a_reader_role_without_grants_reads_on_the_primary_and_fails_the_health_check(routing, settings, caplog):
    """The documented `postgres://reader@…` role before its GRANTs: it connects, and every
    figure read is refused ("permission denied for table …"). Each is read again on the primary
    (no 500), logged once, and /health/detailed says why until the GRANTs are made."""
    settings.DATABASE_REPLICA_RETRY_SECONDS = 0
    acme = tenant("Reader Role")
    send_events(acme.key, 9)
    aggregate(acme.admin)
    staff = client_for(User.objects.create_superuser(email="staff-reader@replica.example", password=PASSWORD))
    routing.primary.execute("DROP ROLE IF EXISTS reader")
    routing.primary.execute("CREATE ROLE reader LOGIN")
    routing.standby.wait_replayed(routing.primary)
    connections[REPLICA].close()
    connections[REPLICA].settings_dict["USER"] = "reader"
    caplog.set_level(logging.WARNING, logger="core.db_routing")
    try:
        with queries_by_alias(PRIMARY, REPLICA) as served:
            assert total_events(acme.analyst) == 9
            assert page_client(acme.analyst_user).get(reverse("analytics:features")).status_code == 200
        assert figures(served[PRIMARY])
        logged = [r.getMessage() for r in caplog.records if r.name == "core.db_routing"]
        assert logged and logged[0].startswith("read replica refuses reads"), logged
        refused = staff.get("/health/detailed")
        assert refused.status_code == 503, refused.json()
        check = refused.json()["checks"]["replica"]
        assert check["status"] == "error" and "may not SELECT" in check["detail"], check

        routing.primary.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", dbname="platform")
        routing.standby.wait_replayed(routing.primary)
        granted = staff.get("/health/detailed").json()["checks"]["replica"]
        assert granted["status"] == "ok", granted
        with queries_by_alias(PRIMARY, REPLICA) as served:  # not cached yet: read
            assert acme.analyst.get("/api/v1/analytics/top-users").status_code == 200
        assert figures(served[REPLICA]) and figures(served[PRIMARY]) == []
        logged = [r.getMessage() for r in caplog.records if r.name == "core.db_routing"]
        assert len(logged) == 2 and logged[1].startswith("read replica reads again"), logged
    finally:
        connections[REPLICA].close()
        connections[REPLICA].settings_dict["USER"] = "postgres"
