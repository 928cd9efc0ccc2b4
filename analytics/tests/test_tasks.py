import sqlite3
import time
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from celery import Celery
from django.core.management import call_command
from django.utils import timezone

from analytics import tasks
from analytics.models import DailyOrgUsage
from core import task_queue
from core.days import today
from core.testing import celery_worker
from telemetry.models import DirtyDay
from usage_platform.celery import app

from .factories import end_user, event, feature


def test_beat_schedule_has_the_rollup_entries():
    schedule = app.conf.beat_schedule
    nightly, hourly = schedule["rollup-nightly"], schedule["rollup-hourly-today"]
    assert nightly["task"] == "analytics.rollup_scheduled"
    assert (nightly["schedule"].hour, nightly["schedule"].minute) == ({0}, {15})
    assert hourly["task"] == "analytics.rollup_today"
    assert hourly["schedule"].minute == {5} and len(hourly["schedule"].hour) == 24
    assert {"analytics.rollup_scheduled", "analytics.rollup_today"} <= set(app.tasks)


@pytest.fixture
def sent():
    """Captures the hand-over messages to insights instead of sending them."""
    calls = []

    def fake_signature(name, kwargs=None, **_):
        signature = mock.Mock()
        signature.apply_async.side_effect = lambda: calls.append((name, kwargs))
        return signature

    with mock.patch.object(task_queue.current_app, "signature", side_effect=fake_signature):
        yield calls


@pytest.mark.django_db
def test_rollup_today_rolls_today_and_dirty_days_then_hands_over(
    org, other_org, sent, django_capture_on_commit_callbacks
):
    f = feature(org, "app")
    user = end_user(org, "u", first_seen=timezone.now())
    now = timezone.now()
    three_days_ago = today() - timedelta(days=3)
    event(org, f, user, now)
    event(org, f, user, now - timedelta(days=3))
    DirtyDay.objects.create(organization=org, date=three_days_ago)
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.rollup_today.delay().get()
    assert result["dirty"] == 1 and result["notified"] == 2
    assert set(DailyOrgUsage.objects.filter(organization=org).values_list("date", flat=True)) == {
        today(),
        three_days_ago,
    }
    assert not DirtyDay.objects.exists()
    by_org = {kwargs["org_id"]: kwargs["dates"] for name, kwargs in sent if name == "insights.after_rollup"}
    assert by_org[org.pk] == [three_days_ago.isoformat(), today().isoformat()]
    assert by_org[other_org.pk] == [today().isoformat()]  # an empty organisation is still checked


@pytest.mark.django_db
def test_rollup_scheduled_rolls_yesterday(org, sent, django_capture_on_commit_callbacks):
    f = feature(org, "app")
    event(org, f, None, timezone.now() - timedelta(days=1))
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.rollup_scheduled.delay().get()
    assert result["days"] == [(today() - timedelta(days=1)).isoformat()]
    assert DailyOrgUsage.objects.get(organization=org).event_count == 1
    assert sent == [("insights.after_rollup", {"org_id": org.pk, "dates": [result["days"][0]]})]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_real_worker_through_redis_broker(org, redis_url, tmp_path):
    app.conf.task_always_eager = False
    f = feature(org, "app")
    user = end_user(org, "u", first_seen=timezone.now())
    for _ in range(3):
        event(org, f, user, timezone.now(), session="s", duration=20)
    with celery_worker(tmp_path, redis_url) as (worker, sqlite_path):
        producer = Celery("test-producer", broker=redis_url, set_as_current=False)
        producer.send_task("analytics.rollup_today")

        def read():
            if sqlite_path is None:
                return list(DailyOrgUsage.objects.filter(organization=org).values_list("event_count", "active_users"))
            with sqlite3.connect(sqlite_path) as db:
                return db.execute(
                    "SELECT event_count, active_users FROM analytics_dailyorgusage WHERE organization_id = ?", [org.pk]
                ).fetchall()

        deadline = time.monotonic() + 90
        rows = []
        while time.monotonic() < deadline and not rows:
            assert worker.poll() is None, worker.stdout.read().decode()[-3000:]
            rows = read()
            time.sleep(0.5)
        assert rows == [(3, 1)]


@pytest.mark.django_db
def test_rollup_prewarms_the_default_dashboard(org, sent, django_assert_num_queries):
    from analytics import queries
    from analytics.params import DEFAULT_RANGE_DAYS

    event(org, feature(org, "app"), None, timezone.now())
    tasks.rollup_today.delay().get()
    start = today() - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    with django_assert_num_queries(0):
        assert queries.usage_summary(org, start, today())["total_events"]["value"] == 1


# --- Rollups run by hand hand over like the scheduled ones ---------------------------------


def _handed_over(sent):
    return {kwargs["org_id"]: kwargs["dates"] for name, kwargs in sent if name == "insights.after_rollup"}


@pytest.mark.django_db
def test_aggregate_run_queues_the_after_rollup_step(
    org, other_org, admin_client, sent, django_capture_on_commit_callbacks
):
    day = today() - timedelta(days=2)
    event(org, feature(org, "app"), None, timezone.now() - timedelta(days=2))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(f"/api/v1/analytics/aggregate/run?since={day}&until={today()}")
    assert response.status_code == 200 and response.json()["aggregated"] > 0
    # Queued once the request's work commits, for this organisation only; a worker runs it.
    assert len(callbacks) == 1
    assert _handed_over(sent) == {org.pk: [day.isoformat(), (day + timedelta(days=1)).isoformat(), today().isoformat()]}


@pytest.mark.django_db
def test_rollup_command_queues_the_after_rollup_step_unless_told_not_to(
    org, other_org, sent, django_capture_on_commit_callbacks
):
    def rollup(*args):
        out = StringIO()
        # A command runs outside a transaction, where the message goes at once; a test is inside one.
        with django_capture_on_commit_callbacks(execute=True):
            call_command("rollup", *args, "--no-progress", stdout=out)
        return out.getvalue()

    day = today() - timedelta(days=1)
    out = rollup("--since", str(day), "--until", str(day))
    assert _handed_over(sent) == {org.pk: [day.isoformat()], other_org.pk: [day.isoformat()]}
    assert "alert rules queued for 2 organisation(s)" in out
    sent.clear()
    rollup("--since", str(day), "--org", org.slug)
    assert _handed_over(sent) == {org.pk: [day.isoformat(), today().isoformat()]}
    sent.clear()
    event(org, feature(org, "app"), None, timezone.now())
    rollup("--all-days", "--no-after-rollup")
    rollup("--since", str(day), "--no-after-rollup")
    assert sent == []


@pytest.mark.django_db
def test_rollup_range_task_queues_the_after_rollup_step(org, other_org, sent, django_capture_on_commit_callbacks):
    day = today() - timedelta(days=3)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.rollup_range_task.delay(day.isoformat(), day.isoformat(), org.pk).get()
    assert _handed_over(sent) == {org.pk: [day.isoformat()]}
