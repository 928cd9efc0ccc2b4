"""The rollup's temporary tables: many days rolled in one transaction hold a constant number
of relation locks on PostgreSQL (its lock table is shared and bounded: ~150 days of tables
created per day once ran it out of slots), and no table outlives the rollup's transaction."""

from datetime import date, timedelta

import pytest
from django.db import connection, transaction

from analytics import rollup
from analytics.models import DailyOrgUsage

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db

FIRST = date(2025, 3, 2)
DAYS = 6
postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's lock table")


@pytest.fixture
def days(org):
    search, export = feature(org, "search"), feature(org, "export")
    people = [end_user(org, f"u{i}", age=20 + i, gender="F" if i % 2 else "M") for i in range(3)]
    for n in range(DAYS):
        day = str(FIRST + timedelta(days=n))
        for i, person in enumerate(people):
            event(org, search if i else export, person, at(day, f"1{i}:00:00"), session=f"s{n}{i}", duration=30)
    return [FIRST + timedelta(days=n) for n in range(DAYS)]


def relation_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation'")
        return cursor.fetchone()[0]


def temp_tables() -> dict[str, int]:
    """{table: rows} of every temporary table this session has (found in the catalogue, so a
    table a new rollup step adds is checked without being named here)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT relname FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relkind = 'r'")
        else:
            # sqlite_stat1: the statistics of an ANALYZE of the temporary tables, SQLite's own.
            cursor.execute("SELECT name FROM sqlite_temp_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
        names = [name for (name,) in cursor.fetchall()]
        found = {}
        for name in names:
            cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(name)}")
            found[name] = cursor.fetchone()[0]
    return found


@postgres_only
def test_days_rolled_in_one_transaction_hold_the_locks_of_one_day(org, days):
    with transaction.atomic():
        rollup.rollup_day(days[0], org)
        rollup.rollup_day(days[0], org)  # a re-roll writes differently: its relations too
        after_one_day = relation_locks()
        for day in days[1:]:
            rollup.rollup_day(day, org)
            rollup.rollup_day(day, org)
        assert relation_locks() == after_one_day
    assert DailyOrgUsage.objects.filter(organization=org).count() == DAYS
    assert set(DailyOrgUsage.objects.values_list("event_count", flat=True)) == {3}


def test_no_rows_are_left_behind_inside_the_transaction(org, days):
    with transaction.atomic():
        rollup.rollup_day(days[0], org)
        left = temp_tables()
    # PostgreSQL keeps each (empty) table until the transaction ends, SQLite drops them.
    assert set(left.values()) <= {0}
    if connection.vendor == "postgresql":
        assert {"rollup_day_events", "rollup_day_users", "ddu_stage"} <= set(left)
    else:
        assert left == {}


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_no_table_outlives_the_rollups_transaction(org, days):
    rollup.rollup_day(days[0], org)
    assert temp_tables() == {}
    rollup.rollup_day(days[1], org)  # and the next one creates them again
    assert temp_tables() == {}
    assert DailyOrgUsage.objects.filter(organization=org).count() == 2


def test_a_failed_day_leaves_nothing_that_breaks_the_next(org, days, monkeypatch):
    def broken(cursor, **kwargs):
        raise RuntimeError("the dimension step failed")

    with transaction.atomic():
        rollup.rollup_day(days[0], org)
        with monkeypatch.context() as patch:
            patch.setattr(rollup, "event_dimensions_build", broken)
            with pytest.raises(RuntimeError):
                rollup.rollup_day(days[1], org)
        rollup.rollup_day(days[1], org)
        rollup.rollup_day(days[2], org)
    assert DailyOrgUsage.objects.filter(organization=org).count() == 3
