"""The event dimensions rolled on a second connection beside the rest of a day's rollup
(PostgreSQL, `analytics.side_lane`): the rows and per-event-type bits equal those of the
same step run inline, on another backend; a failure beside fails the day's roll, a failure
of the roll waits for the step beside to end; a step beside kept waiting for a lock is run
inline; rolls of two days of one organisation side by side, each with its second
connection, both end. No thread is left behind."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from django.db import connection, connections, transaction

from analytics import rollup, side_lane
from analytics.models import DailyDimensionUsage, DailyOrgUsage, UserEventTypeActiveDays
from telemetry.models import DirtyDay

from .factories import random_usage

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="a second connection is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]

FIRST = date(2025, 6, 2)
DAYS = 4


@pytest.fixture
def days(org):
    random_usage(org, FIRST, DAYS, seed=4)
    return [FIRST + timedelta(days=n) for n in range(DAYS)]


def dimension_rows(org):
    return sorted(
        DailyDimensionUsage.objects.filter(organization=org).values_list(
            "date", "feature_id", "dimension", "value", "age_band", "gender", "event_count", "active_users"
        ),
        key=repr,
    )


def type_bits(org):
    return sorted(
        UserEventTypeActiveDays.objects.filter(organization=org).values_list(
            "end_user_id", "event_type", "block_start", "active_days"
        )
    )


def side_threads_end():
    """Whether every thread a step ran beside in has ended (within a few seconds: the
    future is done a moment before its thread returns to the pool and exits)."""
    for thread in threading.enumerate():
        if thread.name.startswith("rollup-side"):
            thread.join(timeout=5)
    return not [thread for thread in threading.enumerate() if thread.name.startswith("rollup-side")]


def recording(monkeypatch):
    """Record the backend each run of the event dimensions' step runs on."""
    ran_on = []
    build = rollup.event_dimensions_build

    def recorded(cursor, **kwargs):
        cursor.execute("SELECT pg_backend_pid()")
        ran_on.append(cursor.fetchone()[0])
        return build(cursor, **kwargs)

    monkeypatch.setattr(rollup, "event_dimensions_build", recorded)
    return ran_on


def own_backend():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def test_the_step_beside_writes_what_it_writes_inline(org, days, monkeypatch):
    ran_on = recording(monkeypatch)
    for day in days:
        rollup.rollup_day(day, org)
    beside = (dimension_rows(org), type_bits(org))
    own = own_backend()
    assert len(ran_on) == DAYS and own not in ran_on
    assert {row[2] for row in beside[0]} >= {"event_type", "event.source", "event.*", "user.plan", "user.*"}
    assert beside[1]
    # Inside a transaction the step runs on the rollup's own connection.
    UserEventTypeActiveDays.objects.filter(organization=org).delete()
    with transaction.atomic():
        for day in days:
            rollup.rollup_day(day, org)
    assert ran_on[DAYS:] == [own] * DAYS
    assert (dimension_rows(org), type_bits(org)) == beside
    assert side_threads_end()


def test_a_failure_beside_rolls_the_day_back(org, days, monkeypatch):
    DirtyDay.objects.create(organization=org, date=days[0])

    def broken(cursor, **kwargs):
        raise RuntimeError("the event dimensions failed")

    monkeypatch.setattr(rollup, "event_dimensions_build", broken)
    with pytest.raises(RuntimeError, match="event dimensions"):
        rollup.rollup_day(days[0], org)
    assert not DailyOrgUsage.objects.filter(organization=org).exists()
    assert DirtyDay.objects.filter(organization=org, date=days[0]).exists()
    assert side_threads_end()


def test_a_failure_of_the_rollup_waits_for_the_step_beside(org, days, monkeypatch):
    build = rollup.event_dimensions_build
    failing, finished = threading.Event(), []

    def late(cursor, **kwargs):
        # Still running when the rollup fails: ends only after it has.
        failing.wait(timeout=10)
        threading.Event().wait(0.2)
        finished.append(build(cursor, **kwargs))
        return finished[-1]

    def broken(*args):
        failing.set()
        raise RuntimeError("the per-user rows failed")

    monkeypatch.setattr(rollup, "event_dimensions_build", late)
    monkeypatch.setattr(rollup, "per_user_rows_write", broken)
    with pytest.raises(RuntimeError, match="per-user rows"):
        rollup.rollup_day(days[0], org)
    # The step beside had ended before the error came out (its own rows committed: they are
    # the day's event dimensions, replaced whole by every roll).
    assert len(finished) == 1
    assert side_threads_end()
    assert not DailyOrgUsage.objects.filter(organization=org).exists()
    assert DailyDimensionUsage.objects.filter(organization=org, date=days[0]).exists()
    monkeypatch.undo()
    rollup.rollup_day(days[0], org)
    assert DailyOrgUsage.objects.filter(organization=org).count() == 1


def test_a_step_beside_kept_waiting_for_a_lock_runs_inline(org, days, monkeypatch, caplog):
    """Another transaction holds the dimension rows' table: the step beside gives up after
    the lock timeout and the rollup runs it itself, waiting as it always did."""
    monkeypatch.setattr(side_lane, "LOCK_TIMEOUT_MS", 200)
    ran_on = recording(monkeypatch)
    locked, release = threading.Event(), threading.Event()

    def hold_the_table():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("LOCK TABLE analytics_dailydimensionusage IN EXCLUSIVE MODE")
                locked.set()
                release.wait(timeout=10)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_table)
    holder.start()
    assert locked.wait(timeout=10)
    threading.Timer(1.0, release.set).start()
    try:
        rollup.rollup_day(days[0], org)
    finally:
        release.set()
        holder.join(timeout=10)
    own = own_backend()
    assert len(ran_on) == 2 and ran_on[0] != own and ran_on[1] == own
    assert "running it inline" in caplog.text
    assert {row[2] for row in dimension_rows(org)} >= {"event_type", "event.*", "user.*"}
    assert side_threads_end()


def test_two_days_of_one_organisation_rolled_side_by_side_both_end(org, days):
    def roll(day):
        try:
            return rollup.rollup_day(day, org)
        finally:
            connections.close_all()

    for _ in range(3):
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(roll, day) for day in days[:2]]
            try:
                for future in futures:
                    future.result(timeout=60)
            except TimeoutError:
                # Waiting for each other: end the backends so the threads can end, then fail.
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                pytest.fail("two rolls of one organisation's days waited for each other")
    assert DailyOrgUsage.objects.filter(organization=org, date__in=days[:2]).count() == 2
    assert side_threads_end()
