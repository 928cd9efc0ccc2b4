"""Read routing (core.db_routing) through the real views, tasks and health check, with the
"replica" alias as the test settings make it: a second connection to the test database (its
TEST MIRROR), on SQLite and PostgreSQL alike. Which alias served each query is recorded on
the connections themselves. The real streaming standby (lag, a stopped server) is in
test_read_replica.py.

Routing is on only here (conftest.py turns it off for every other test); these tests commit
(transaction=True), because a second connection cannot see a test transaction's rows."""

import logging
import time

import pytest
from django.core.cache import cache
from django.db import OperationalError, connections
from django.db.backends.utils import CursorWrapper
from django.urls import reverse

from analytics import rollup
from analytics.params import today
from analytics.tests.pages_data import usage_make
from conftest import PASSWORD, client_for
from core import db_routing
from core.db_routing import PRIMARY, REPLICA
from core.testing import page_client, queries_by_alias
from insights import narrative
from insights import tasks as insight_tasks
from insights.models import Anomaly
from tenants.models import User

pytestmark = pytest.mark.django_db(transaction=True, databases=[PRIMARY, REPLICA])

FIGURE_TABLES = ("analytics_", "insights_", "telemetry_")
API_READS = [
    "/api/v1/analytics/usage-summary",
    "/api/v1/analytics/feature-usage",
    "/api/v1/analytics/feature-usage?format=csv",
    "/api/v1/analytics/user-activity",
    "/api/v1/analytics/timeseries?metric=active_users",
    "/api/v1/analytics/top-users",
    "/api/v1/analytics/users/user-001",
    "/api/v1/analytics/retention",  # raw SQL, on the scope's connection
    "/api/v1/analytics/funnel?steps=search,export",
    "/api/v1/ai/anomalies",
    "/api/v1/ai/chart-data",
]
PAGES = [
    "analytics:dashboard",
    "analytics:features",
    "analytics:users",
    "analytics:retention",
    "analytics:funnels?steps=search,export",
    "insights:index",
]


def served():
    return queries_by_alias(PRIMARY, REPLICA)


def figures(queries):
    """The queries that read the platform's figures (not sessions, users or organisations)."""
    return [sql for sql in queries if any(table in sql for table in FIGURE_TABLES)]


@pytest.fixture
def usage(org, admin_user, analyst_user, settings):
    """Two weeks of usage, rolled up with routing still off (so nothing is marked), then
    routing on."""
    usage_make(org, days=14, users=6)
    narrative.insight_current(org)  # cached: the Insights page reads it without writing
    settings.DATABASE_READ_REPLICA = True
    return org


@pytest.fixture
def unreachable_replica(settings):
    """Points the replica alias at nothing (a closed port; a SQLite file that cannot exist)
    while the test runs; the primary is untouched."""
    replica = connections[REPLICA]
    saved = dict(replica.settings_dict)
    if replica.vendor == "postgresql":
        replica.settings_dict.update(HOST="127.0.0.1", PORT=_closed_port())
    else:
        replica.settings_dict["NAME"] = "/nonexistent-directory/replica.sqlite3"
    replica.close()  # set after the new NAME: SQLite ignores closing an in-memory database
    yield
    replica.close()
    replica.settings_dict.clear()
    replica.settings_dict.update(saved)


def _closed_port():
    from core.testing_servers import free_port

    return str(free_port())


@pytest.mark.parametrize("url", API_READS)
def test_the_figures_api_reads_on_the_replica_and_authenticates_on_the_primary(usage, analyst_client, url):
    with served() as record:
        response = analyst_client.get(url)
    assert response.status_code == 200, response.content
    assert figures(record[REPLICA]), record
    assert figures(record[PRIMARY]) == []
    assert any("tenants_user" in sql for sql in record[PRIMARY])  # the JWT's user


@pytest.mark.parametrize("name", PAGES)
def test_the_figures_pages_read_on_the_replica(usage, analyst_user, name):
    client = page_client(analyst_user)
    with served() as record:
        name, _, query = name.partition("?")
        response = client.get(f"{reverse(name)}?{query}")
    assert response.status_code == 200
    assert figures(record[REPLICA]), record
    assert figures(record[PRIMARY]) == []


def test_query_counts_per_database_are_pinned(usage, analyst_client, django_assert_num_queries):
    url = "/api/v1/analytics/feature-usage?start=2020-01-01&end=2020-01-31"
    # The primary: the JWT's user; the replica: the feature rows (one query, from the rollups).
    with django_assert_num_queries(1, connection=connections[PRIMARY]):
        with django_assert_num_queries(1, connection=connections[REPLICA]):
            assert analyst_client.get(url).status_code == 200


def test_writes_and_the_settings_endpoints_stay_on_the_primary(usage, admin_client, monkeypatch):
    from analytics import handover

    # aggregate/run hands its days to the insights engine, a task a worker runs (eagerly here,
    # in the request): its detectors read the replica as any detector does. Queued, not run.
    queued = []
    monkeypatch.setattr(handover, "task_send_on_commit", lambda name, **kwargs: queued.append(name))
    with served() as record:
        assert admin_client.post(f"/api/v1/analytics/aggregate/run?date={today()}").status_code == 200
        assert queued == [handover.AFTER_ROLLUP_TASK]
        assert admin_client.get("/api/v1/org/webhooks").status_code == 200
        assert admin_client.patch("/api/v1/org", {"name": "Acme Renamed"}, format="json").status_code == 200
    assert record[REPLICA] == []
    assert any("analytics_dailyorgusage" in sql for sql in record[PRIMARY])


def test_after_aggregate_run_the_organisation_reads_on_the_primary_until_the_replica_has_it(
    usage, admin_client, analyst_client, other_client, settings
):
    assert admin_client.post(f"/api/v1/analytics/aggregate/run?date={today()}").status_code == 200
    summary = "/api/v1/analytics/usage-summary"
    with served() as record:
        # The admin who ran it and a colleague (the organisation's cache is filled now).
        assert admin_client.get(summary).status_code == 200
        assert analyst_client.get("/api/v1/analytics/top-users").status_code == 200
    assert figures(record[REPLICA]) == []
    assert figures(record[PRIMARY])
    # Another organisation is not held back by it.
    with served() as record:
        assert other_client.get(summary).status_code == 200
    assert figures(record[REPLICA])
    # Here the "replica" is the primary, which never reports a replayed position: the mark
    # holds until it expires, then reads return to the replica.
    cache.delete_many(_marks_of(usage))
    with served() as record:
        assert analyst_client.get("/api/v1/analytics/feature-usage").status_code == 200
    assert figures(record[REPLICA]) and figures(record[PRIMARY]) == []


def _marks_of(org):
    users = User.objects.filter(organization=org).values_list("pk", flat=True)
    return [db_routing.MARK_KEY.format(kind="org", id=org.pk)] + [
        db_routing.MARK_KEY.format(kind="user", id=pk) for pk in users
    ]


def test_a_request_that_wrote_keeps_its_user_on_the_primary(usage, admin_user, analyst_client):
    anomaly = Anomaly.objects.create(
        organization=usage, date=today(), detector="timeseries", metric="event_count", value=9, score=5
    )
    admin = client_for(admin_user)
    assert admin.patch(f"/api/v1/ai/anomalies/{anomaly.pk}", {"status": "resolved"}, format="json").status_code == 200
    with served() as record:
        listed = admin.get("/api/v1/ai/anomalies").json()["results"]
    assert [row["status"] for row in listed] == ["resolved"]
    assert figures(record[REPLICA]) == [] and figures(record[PRIMARY])
    # A colleague who wrote nothing reads on the replica (the write was not a rollup).
    with served() as record:
        assert analyst_client.get("/api/v1/ai/anomalies").status_code == 200
    assert figures(record[REPLICA])


def test_the_detectors_read_on_the_replica_unless_a_rollup_just_wrote(usage, settings):
    with served() as record:
        insight_tasks.after_rollup(usage.pk)
    assert any("analytics_dailyfeatureusage" in sql for sql in record[REPLICA])
    rollup.rollup_day(today(), usage)  # marks the organisation
    with served() as record:
        insight_tasks.after_rollup(usage.pk)
    assert figures(record[REPLICA]) == []
    assert any("analytics_dailyfeatureusage" in sql for sql in record[PRIMARY])


def test_a_replica_failing_mid_request_is_read_again_on_the_primary_and_logged_once(
    usage, analyst_client, monkeypatch, caplog
):
    original = CursorWrapper._execute
    failures = {"left": 1}

    def flaky(self, sql, params, *args):
        if self.db.alias == REPLICA and failures["left"]:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return original(self, sql, params, *args)

    monkeypatch.setattr(CursorWrapper, "_execute", flaky)
    caplog.set_level(logging.WARNING, logger="core.db_routing")
    summary = analyst_client.get("/api/v1/analytics/usage-summary")
    assert summary.status_code == 200, summary.content
    assert summary.json()["total_events"]["value"] > 0
    with served() as record:  # resting: the replica is not even tried
        assert analyst_client.get("/api/v1/analytics/top-users").status_code == 200
    assert record[REPLICA] == [] and figures(record[PRIMARY])
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("read replica unreachable"), warnings


def test_a_failing_page_is_read_again_on_the_primary(usage, analyst_user, monkeypatch):
    original = CursorWrapper._execute

    def failing(self, sql, params, *args):
        if self.db.alias == REPLICA:
            raise OperationalError("could not receive data from server")
        return original(self, sql, params, *args)

    monkeypatch.setattr(CursorWrapper, "_execute", failing)
    response = page_client(analyst_user).get(reverse("analytics:features"))
    assert response.status_code == 200
    assert b"search" in response.content


def test_an_unreachable_replica_sends_reads_to_the_primary_logged_once_until_it_is_back(
    usage, analyst_client, analyst_user, settings, caplog, unreachable_replica
):
    settings.DATABASE_REPLICA_RETRY_SECONDS = 0.2
    caplog.set_level(logging.WARNING, logger="core.db_routing")
    with served() as record:
        for url in API_READS[:4]:
            assert analyst_client.get(url).status_code == 200, url
        assert page_client(analyst_user).get(reverse("analytics:dashboard")).status_code == 200
        time.sleep(0.25)  # past the back-off: tried again, still down, not logged again
        assert analyst_client.get(API_READS[4]).status_code == 200
    assert figures(record[PRIMARY])
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(messages) == 1 and messages[0].startswith("read replica unreachable"), messages
    assert db_routing.replica_outage()


def test_the_replica_back_is_used_again_and_logged_once(usage, analyst_client, settings, caplog):
    settings.DATABASE_REPLICA_RETRY_SECONDS = 0.2
    db_routing.replica_failed(OperationalError("connection refused"))
    assert db_routing.replica_resting()
    time.sleep(0.25)
    caplog.set_level(logging.WARNING, logger="core.db_routing")
    caplog.clear()
    with served() as record:
        assert analyst_client.get(API_READS[1]).status_code == 200
    assert figures(record[REPLICA])
    assert [r.getMessage()[:30] for r in caplog.records] == ["read replica reachable again a"]
    assert not db_routing.replica_outage()


def test_health_detailed_reports_the_replica(usage, settings):
    staff = client_for(User.objects.create_superuser(email="staff@platform.example", password=PASSWORD))
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.DATABASE_READ_REPLICA = False
    assert staff.get("/health/detailed").json()["checks"]["replica"]["detail"] == "not configured"
    settings.DATABASE_READ_REPLICA = True
    check = staff.get("/health/detailed").json()["checks"]["replica"]
    if connections[REPLICA].vendor == "postgresql":
        # The mirror is the primary itself, which is not in recovery: a misconfiguration.
        assert check["status"] == "error" and "not a standby" in check["detail"], check
    else:
        assert check["status"] == "ok" and check["detail"]["reads"] == "replica", check


def test_routing_off_reads_everything_on_the_primary(usage, analyst_client, settings):
    settings.DATABASE_READ_REPLICA = False
    with served() as record:
        assert analyst_client.get(API_READS[0]).status_code == 200
    assert record[REPLICA] == [] and figures(record[PRIMARY])
