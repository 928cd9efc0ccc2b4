"""The per-feature active-day bitmasks (UserFeatureActiveDays): kept exact by the rollup (late
and vanished events, re-rolls, the migration's fill), and every per-feature distinct-user
answer read from them equal to the raw events over random ranges crossing blocks, under the
person and account filters."""

import random
import re
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from analytics import queries, rollup
from analytics.active_days import BLOCK_DAYS, block_of, day_bit
from analytics.models import DailyUserFeatureUsage, UserFeatureActiveDays
from analytics.queries import active
from analytics.queries.breakdowns import breakdown_totals
from analytics.queries.common import week_monday
from core.testing import waits_for_held
from telemetry.models import UsageEvent

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, event, feature, migration_fill_run, users_on_days
from .test_rollup_equivalence import assert_summary_equal, randomized

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)  # mid-block: ranges ending here cut their last block


def bits_from_days(org):
    """{(end user, feature, block): bits} as the per-user feature rows say they should be."""
    expected: dict[tuple[int, int, date], int] = defaultdict(int)
    rows = DailyUserFeatureUsage.objects.filter(organization=org).values_list("end_user_id", "feature_id", "date")
    for uid, fid, day in rows:
        expected[(uid, fid, block_of(day))] |= day_bit(day)
    return dict(expected)


def bitmasks(org):
    rows = UserFeatureActiveDays.objects.filter(organization=org).values_list(
        "end_user_id", "feature_id", "block_start", "active_days"
    )
    return {(uid, fid, block): bits for uid, fid, block, bits in rows}


def earlier_copies(org):
    """{(end user, feature, block): (earlier_days_1, earlier_days_2)} as the rows hold them."""
    rows = UserFeatureActiveDays.objects.filter(organization=org).values_list(
        "end_user_id", "feature_id", "block_start", "earlier_days_1", "earlier_days_2"
    )
    return {(uid, fid, block): (one, two) for uid, fid, block, one, two in rows}


def earlier_from_rows(org):
    """The same, as the bitmasks of the blocks before each row say they should be."""
    bits = bitmasks(org)
    return {
        (uid, fid, block): tuple(bits.get((uid, fid, block - timedelta(days=BLOCK_DAYS * k)), 0) for k in (1, 2))
        for uid, fid, block in bits
    }


def _long(org):
    return randomized(org, seed=57, days=150, n_users=40, n_events=1500, last=LAST)


@pytest.fixture(scope="module")
def long_data(module_org, django_db_blocker):
    """The long data set, rolled up once for the module's reading tests (those that change it
    do so inside their own transaction, rolled back after them)."""
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_long(module_org)}


@pytest.fixture
def fresh_long_data(org):
    return _long(org)


# Committed per day (transaction=True), as a rollup runs outside tests: 300 days of temporary
# tables in one test transaction hold more locks than PostgreSQL's shared lock table has.
@pytest.mark.django_db(transaction=True)
def test_rollup_keeps_feature_bitmasks_equal_to_the_daily_rows(org, fresh_long_data):
    assert bitmasks(org) == bits_from_days(org)
    assert len({block for _, _, block in bitmasks(org)}) >= 3
    assert earlier_copies(org) == earlier_from_rows(org)
    assert any(two for _, two in earlier_copies(org).values())
    before, copies = bitmasks(org), earlier_copies(org)
    rollup.rollup_range(fresh_long_data["first"], LAST, org)
    assert bitmasks(org) == before
    assert earlier_copies(org) == copies


def test_late_and_vanished_events_set_and_clear_their_feature_bit(long_data):
    org = long_data["org"]
    day = LAST - timedelta(days=3)
    gone = UsageEvent.objects.filter(organization=org, end_user__isnull=False, timestamp__date=day).first()
    assert gone is not None
    key = (gone.end_user_id, gone.feature_id, block_of(day))
    UsageEvent.objects.filter(
        organization=org, end_user_id=gone.end_user_id, feature_id=gone.feature_id, timestamp__date=day
    ).delete()
    rollup.rollup_day(day, org)
    assert not bitmasks(org).get(key, 0) & day_bit(day)
    UsageEvent.objects.create(
        organization=org, feature_id=gone.feature_id, end_user_id=gone.end_user_id, timestamp=at(str(day), "09:30:00")
    )
    rollup.rollup_day(day, org)
    assert bitmasks(org)[key] & day_bit(day)
    assert bitmasks(org) == bits_from_days(org)
    assert earlier_copies(org) == earlier_from_rows(org)


def test_days_of_an_earlier_block_re_rolled_update_the_later_rows_copies(long_data):
    """Late or vanished events on a day two blocks back change that block's row; the rows of
    the same user and feature one and two blocks later hold copies of it, which follow."""
    org = long_data["org"]
    newest = block_of(LAST)
    oldest = newest - timedelta(days=2 * BLOCK_DAYS)
    pairs = {(uid, fid) for uid, fid, block in bitmasks(org) if block == newest}
    uid, fid = next((u, f) for u, f, block in sorted(bitmasks(org)) if block == oldest and (u, f) in pairs)
    days = sorted(
        {
            t.date()
            for t in UsageEvent.objects.filter(organization=org, end_user_id=uid, feature_id=fid).values_list(
                "timestamp", flat=True
            )
            if block_of(t.date()) == oldest
        }
    )
    UsageEvent.objects.filter(organization=org, end_user_id=uid, feature_id=fid, timestamp__date__in=days).delete()
    for day in days:
        rollup.rollup_day(day, org)
    assert (uid, fid, oldest) not in bitmasks(org)
    assert earlier_copies(org)[(uid, fid, newest)][1] == 0
    assert earlier_copies(org) == earlier_from_rows(org)
    late = oldest + timedelta(days=3)
    UsageEvent.objects.create(organization=org, feature_id=fid, end_user_id=uid, timestamp=at(str(late), "08:00:00"))
    rollup.rollup_day(late, org)
    assert earlier_copies(org)[(uid, fid, newest)][1] == day_bit(late)
    assert earlier_copies(org) == earlier_from_rows(org)
    assert bitmasks(org) == bits_from_days(org)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one write transaction at a time")
@pytest.mark.django_db(transaction=True)
def test_rolls_of_two_blocks_side_by_side_keep_the_copies(org):
    """A roll inserting a user's first row of a block copies the block before as committed
    then; a roll changing that earlier block at the same time cannot see the uncommitted
    row. The per-feature step takes the organisation's lock, so the second waits and then
    updates the copy."""
    newest = block_of(LAST)
    before_a, before_b = newest - timedelta(days=3), newest - timedelta(days=2)
    (person,) = users_on_days(org, 1, [before_a, newest])
    rollup.rollup_day(before_a, org)
    search = UserFeatureActiveDays.objects.get(organization=org, end_user=person).feature_id
    UsageEvent.objects.create(organization=org, feature_id=search, end_user=person, timestamp=at(str(before_b)))

    def roll_newest():
        rollup.rollup_day(newest, org)  # inserts the user's row of the newest block

    def roll_earlier():
        rollup.rollup_day(before_b, org)  # sets a bit of the block before

    waits_for_held(roll_newest, roll_earlier, "the earlier block's roll must wait for the newest one's")
    copies = earlier_copies(org)
    assert copies[(person.pk, search, newest)] == (day_bit(before_a) | day_bit(before_b), 0)
    assert copies == earlier_from_rows(org)


def test_migration_0014_fills_the_copies_the_rollup_keeps(long_data):
    org = long_data["org"]
    kept = earlier_copies(org)
    UserFeatureActiveDays.objects.update(earlier_days_1=0, earlier_days_2=0)
    migration_fill_run("0014_feature_earlier_days_fill")
    assert earlier_copies(org) == kept


def test_migration_fill_equals_the_rollup(long_data):
    org = long_data["org"]
    rolled = bitmasks(org)
    UserFeatureActiveDays.objects.all().delete()
    migration_fill_run("0009_feature_active_days")
    assert bitmasks(org) == rolled


def random_ranges(first: date, n: int, seed: int) -> list[tuple[date, date]]:
    rng = random.Random(seed)
    ranges = [(LAST - timedelta(days=89), LAST), (first, LAST), (LAST - timedelta(days=6), LAST)]
    for _ in range(n):
        a, b = sorted(first + timedelta(days=rng.randrange((LAST - first).days + 1)) for _ in range(2))
        ranges.append((a, b))
    return ranges


def filter_sets(data):
    account = data["accounts"][0]
    return [{}, {"gender": "F"}, {"age": "18-40"}, {"age": ">40", "gender": "M"}, {"account": account.pk}]


def raw_feature_users(rows, start, end, filters):
    users: dict[int, set[int]] = defaultdict(set)
    for r in ref.matching(rows, filters):
        if r.user is not None and start <= r.day <= end:
            users[r.feature].add(r.user)
    return {fid: len(u) for fid, u in users.items()}


def test_feature_users_over_random_ranges_equal_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    for filters in filter_sets(long_data):
        for start, end in random_ranges(long_data["first"], 6, seed=len(filters)):
            assert active.feature_users(org, start, end, filters) == raw_feature_users(rows, start, end, filters), (
                filters,
                start,
                end,
            )


def test_stickiness_uses_exact_distinct_feature_users(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    start, end = LAST - timedelta(days=89), LAST
    for filters in filter_sets(long_data):
        distinct = raw_feature_users(rows, start, end, filters)
        daily: dict[int, set[tuple[int, date]]] = defaultdict(set)
        for r in ref.matching(rows, filters):
            if r.user is not None and start <= r.day <= end:
                daily[r.feature].add((r.user, r.day))
        got = queries.feature_usage.uncached(org, start, end, filters, stickiness=True)
        for row in got:
            fid = row["feature_id"]
            if not filters:
                # Without a person filter, anonymous events count in the daily users: the
                # distinct side is what is checked here.
                continue
            expected = round(len(daily[fid]) * 100.0 / 90 / distinct[fid], 1) if distinct.get(fid) else None
            assert row["stickiness_pct"] == expected, (filters, fid)


def test_feature_filtered_summary_and_weeks_equal_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    feature = long_data["features"][1]
    for filters in filter_sets(long_data):
        scoped = {**filters, "feature": feature.pk}
        for start, end in random_ranges(long_data["first"], 3, seed=7):
            assert_summary_equal(org, rows, start, end, scoped)
        start, end = LAST - timedelta(days=89), LAST
        weeks: dict[date, set[int]] = defaultdict(set)
        for r in ref.matching(rows, scoped):
            if r.user is not None and start <= r.day <= end:
                weeks[week_monday(r.day)].add(r.user)
        got = active.weekly_users(active.active_rows(org, scoped), start, end)
        assert got == {w: len(u) for w, u in weeks.items()}, filters


def test_feature_filtered_people_breakdown_equals_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    start, end = LAST - timedelta(days=89), LAST
    feature = long_data["features"][2]
    users: dict[str, set[int]] = defaultdict(set)
    for r in ref.matching(rows, {"feature": feature.pk}):
        if r.user is not None and start <= r.day <= end:
            users[r.gender or "(none)"].add(r.user)
    got = breakdown_totals.uncached(
        org, dimension="gender", start=start, end=end, metric="active_users", filters={"feature": feature.pk}
    )
    assert {g["key"]: g["value"] for g in got} == {k: len(v) for k, v in users.items()}


def test_users_per_feature_breakdown_equals_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    keys = {f.pk: f.key for f in long_data["features"]}
    for filters in filter_sets(long_data):
        for start, end in random_ranges(long_data["first"], 3, seed=11):
            expected = raw_feature_users(rows, start, end, filters)
            got = breakdown_totals.uncached(
                org, dimension="feature", start=start, end=end, metric="active_users", filters=filters
            )
            assert {g["key"]: g["value"] for g in got} == {keys[f]: n for f, n in expected.items()}, (filters, start)
            assert [g["value"] for g in got] == sorted((g["value"] for g in got), reverse=True)


def test_feature_distinct_user_reads_query_counts(long_data, django_assert_num_queries):
    org = long_data["org"]
    start, end = LAST - timedelta(days=89), LAST
    feature = long_data["features"][0]
    with django_assert_num_queries(1):  # every feature's distinct users in one statement
        active.feature_users(org, start, end, {"gender": "F"})
    with django_assert_num_queries(2):  # the figures per feature, then the distinct users
        queries.feature_usage.uncached(org, start, end, {"age": "18-40"}, stickiness=True)
    with django_assert_num_queries(3):  # totals, distinct users of both periods, features tracked
        queries.usage_summary.uncached(org, start, end, filters={"feature": feature.pk, "gender": "F"})
    with django_assert_num_queries(1):
        queries.timeseries.uncached(
            org, metric="active_users", interval="week", start=start, end=end, feature=feature.pk
        )


def test_bitmask_joins_are_planned_without_nested_loops(org):
    """The day's per-user rows are written in the rollup's own transaction, so PostgreSQL
    cannot estimate them; on tables never analysed (every test database, and a new
    installation's first days) it planned the bitmask anti-join as a nested loop re-reading
    the block per row (52 s for one day of 20,000 users). Each bitmask join runs with nested
    loops off, is then planned without one, and the setting is put back after it."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    first = block_of(LAST) + timedelta(days=1)
    people = users_on_days(org, 5, [first, first + timedelta(days=1)])
    rollup.rollup_day(first, org)
    with CaptureQueriesContext(connection) as ctx:
        rollup.rollup_day(first, org)  # nothing vanished: no empty rows to drop
    assert not [q for q in ctx.captured_queries if q["sql"].startswith("DELETE FROM analytics_userfeatureactivedays")]
    # Nor a bit to clear or set: the joins of the day's rows with the block's are skipped.
    assert not [q for q in ctx.captured_queries if "analytics_userfeatureactivedays" in q["sql"]]
    UsageEvent.objects.filter(end_user=people[0], timestamp__gte=at(str(first), "00:00:00")).delete()
    event(org, feature(org, "export"), people[1], at(str(first), "10:00:00"))
    with CaptureQueriesContext(connection) as ctx:
        rollup.rollup_day(first, org)  # a re-roll with a vanished user and a new pair: clear and set
    statements = [q["sql"] for q in ctx.captured_queries]
    joins = [
        i
        for i, sql in enumerate(statements)
        if re.search(r"^\s*(INSERT INTO|UPDATE) analytics_(user|account)(feature|eventtype)?activedays", sql)
        and re.search(r"NOT EXISTS|LEFT JOIN", sql)
    ]
    # The per-user set, the per-feature and per-event-type clear and set, the per-account
    # set, the week of feature masks recomputed (a pair vanished).
    assert len(joins) == 7
    for i in joins:
        # A block of joins (the event-type clear and set) is opened once and closed after the last.
        first = i
        while first - 1 in joins:
            first -= 1
        switches = _switches_before(statements, first)
        assert "SET LOCAL enable_nestloop = off" in switches
        assert i + 1 in joins or statements[i + 1] == "SELECT set_config('enable_nestloop', 'on', true)"
        plan = _plan(statements[i], switches)
        assert "Nested Loop" not in plan, plan
    assert UserFeatureActiveDays.objects.filter(organization=org, end_user=people[0]).count() == 0


def _switches_before(statements, i):
    """The `SET LOCAL` statements of the `plans_without` block statement `i` opens."""
    switches = []
    while statements[i - 1].startswith(("SET LOCAL enable_", "SELECT current_setting")):
        i -= 1
        if statements[i].startswith("SET LOCAL"):
            switches.append(statements[i])
    return switches


def _plan(statement, switches):
    with transaction.atomic(), connection.cursor() as cursor:
        for switch in switches:
            cursor.execute(switch)
        cursor.execute("EXPLAIN " + statement)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)
    return plan


FOUR_COLUMN_INDEXES = ("ufad_org_block_feature_user_uniq", "ufad_org_user_block_idx")


def test_copy_probes_use_a_four_column_index_on_a_near_empty_table(org):
    """A new row's copies are looked up one probe per row. Planned on a near-empty table (a
    new installation's first days; every test database), each probe was a sequential scan
    (seen in the backend's stack: a Seq Scan inside the SubPlan), and organisations
    backfilled side by side grew the table under it: one first day ran 15 minutes. The
    statements that probe run with sequential scans off, and both of the table's indexes hold
    the four key columns: every probe is a one-row index scan whatever the table's size when
    planned."""
    if connection.vendor != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    first = block_of(LAST)
    users_on_days(org, 3, [first - timedelta(days=BLOCK_DAYS), first])
    with connection.cursor() as cursor:
        # Statistics that say "empty", as a new installation's `VACUUM ANALYZE` leaves them.
        cursor.execute("ANALYZE analytics_userfeatureactivedays")
    rollup.rollup_day(first - timedelta(days=BLOCK_DAYS), org)
    with CaptureQueriesContext(connection) as ctx:
        rollup.rollup_day(first, org)
    statements = [q["sql"] for q in ctx.captured_queries]
    probing = [i for i, sql in enumerate(statements) if "SELECT p.active_days" in sql]
    assert probing  # the set, and the refresh of the later copies is not due (no later block)
    for i in probing:
        plan = _plan(statements[i], _switches_before(statements, i))
        subplans = plan[plan.index("SubPlan") :]
        assert "Seq Scan" not in subplans, plan
        assert any(f"Index Scan using {index}" in subplans for index in FOUR_COLUMN_INDEXES), plan
