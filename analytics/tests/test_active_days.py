"""The active-day bitmasks (UserActiveDays): block layout, kept exact by the rollup (late and
vanished events, re-rolls, the migration's fill), and every distinct-user answer read from
them equal to the raw events over ranges that cross blocks, filters included."""

from collections import Counter, defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection

from analytics import queries, rollup
from analytics.active_days import BLOCK_DAYS, block_of, day_bit, range_masks
from analytics.models import DailyUserUsage, UserActiveDays
from analytics.queries import active
from analytics.queries.accounts import _windows, account_list
from analytics.queries.breakdowns import breakdown_series, breakdown_totals
from analytics.queries.breakdowns.sources import BREAKDOWN_LIMIT
from analytics.queries.common import week_monday
from telemetry.models import EndUser, UsageEvent

from . import raw_reference as ref
from .conftest import D1, D3, committed_writes
from .factories import at, end_user, event, migration_fill_run, users_on_days
from .test_rollup_equivalence import assert_series_equal, assert_summary_equal, first_seen_of, randomized

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)  # mid-block: ranges ending here cut their last block


def bits_from_days(org):
    """{(end user, block): bits} as the per-user daily rows say they should be."""
    expected: dict[tuple[int, date], int] = defaultdict(int)
    for uid, day in DailyUserUsage.objects.filter(organization=org).values_list("end_user_id", "date"):
        expected[(uid, block_of(day))] |= day_bit(day)
    return dict(expected)


def bitmasks(org):
    rows = UserActiveDays.objects.filter(organization=org).values_list("end_user_id", "block_start", "active_days")
    return {(uid, block): bits for uid, block, bits in rows}


def test_blocks_start_on_mondays_and_masks_cover_the_range():
    day = date(2025, 3, 1)
    assert block_of(day).weekday() == 0
    assert block_of(day) <= day < block_of(day) + timedelta(days=BLOCK_DAYS)
    assert block_of(block_of(day)) == block_of(day)
    start, end = date(2025, 1, 1), date(2025, 6, 30)
    masks = range_masks(start, end)
    covered = [b + timedelta(days=i) for b, m in masks.items() for i in range(BLOCK_DAYS) if m >> i & 1]
    assert covered == [start + timedelta(days=i) for i in range((end - start).days + 1)]
    assert range_masks(end, start) == {}


def _long(org):
    return randomized(org, seed=56, days=150, n_users=40, n_events=1500, last=LAST)


@pytest.fixture(scope="module")
def long_data(module_org, django_db_blocker):
    """The long data set, rolled up once for the module's reading tests."""
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_long(module_org)}


@pytest.fixture
def fresh_long_data(org):
    return _long(org)


# Committed per day (transaction=True), as a rollup runs outside tests: 300 days of temporary
# tables in one test transaction hold more locks than PostgreSQL's shared lock table has.
@pytest.mark.django_db(transaction=True)
def test_rollup_keeps_bitmasks_equal_to_the_daily_rows(org, fresh_long_data):
    assert bitmasks(org) == bits_from_days(org)
    assert len({block for _, block in bitmasks(org)}) >= 3
    before = bitmasks(org)
    rollup.rollup_range(fresh_long_data["first"], LAST, org)
    assert bitmasks(org) == before


def test_late_and_vanished_events_set_and_clear_their_bit(org, hand_checked):
    u3 = hand_checked["u3"]
    assert bitmasks(org)[(u3.pk, block_of(D3))] == day_bit(D3)
    UsageEvent.objects.filter(end_user=u3).delete()
    rollup.rollup_day(D3, org)
    assert (u3.pk, block_of(D3)) not in bitmasks(org)
    UsageEvent.objects.create(
        organization=org, feature=hand_checked["search"], end_user=u3, timestamp=at(str(D1), "09:30:00")
    )
    rollup.rollup_day(D1, org)
    assert bitmasks(org)[(u3.pk, block_of(D1))] == day_bit(D1)
    assert bitmasks(org) == bits_from_days(org)


def _bitmask_writes():
    """Rows of UserActiveDays inserted or updated so far in this transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n_tup_ins + n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'analytics_useractivedays'"
        )
        return cursor.fetchone()[0]


def test_a_day_writes_each_users_bitmask_row_once(org):
    """Every write leaves a dead row version behind (PostgreSQL): a user's bit and week events
    change in one write, an unchanged re-roll writes none, and the table's pages keep room
    for the writes (fillfactor 50)."""
    if connection.vendor != "postgresql":
        pytest.skip("row versions and storage parameters are PostgreSQL's")
    first = block_of(LAST) + timedelta(days=1)
    people = users_on_days(org, 3, [first, first + timedelta(days=1)])
    rollup.rollup_day(first, org)
    before = _bitmask_writes()
    rollup.rollup_day(first + timedelta(days=1), org)
    assert _bitmask_writes() - before == len(people)
    before = _bitmask_writes()
    rollup.rollup_day(first + timedelta(days=1), org)
    assert _bitmask_writes() == before
    assert bitmasks(org) == bits_from_days(org)
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'analytics_useractivedays'")
        assert cursor.fetchone()[0] == ["fillfactor=50"]


@pytest.fixture
def hand_checked(org, dataset):
    rollup.rollup_range(D1, D3, org)
    return dataset


def test_migration_fill_equals_the_rollup(long_data):
    org = long_data["org"]
    rolled = bitmasks(org)
    UserActiveDays.objects.all().delete()
    migration_fill_run("0005_user_active_days")
    assert bitmasks(org) == rolled


def filter_sets():
    return [{}, {"gender": "F"}, {"age": "18-40"}, {"age": ">40", "gender": "M"}]


def test_distinct_users_over_ranges_crossing_blocks_equal_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    first = long_data["first"]
    ranges = [
        (first, LAST),
        (LAST - timedelta(days=89), LAST),
        (first + timedelta(days=50), first + timedelta(days=60)),
    ]
    for filters in filter_sets():
        for start, end in ranges:
            assert_summary_equal(org, rows, start, end, filters)
        assert_series_equal(org, rows, LAST - timedelta(days=89), LAST, filters)


def test_retention_across_blocks_equals_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    for weeks, end in ((20, LAST), (12, LAST - timedelta(days=30)), (5, LAST - timedelta(days=3))):
        got = queries.retention.uncached(org, weeks=weeks, end=end)["cohorts"]
        assert got == ref.retention(rows, first_seen_of(org), weeks, end), (weeks, end)


def test_people_breakdown_totals_equal_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    start, end = LAST - timedelta(days=89), LAST
    for filters in ({}, {"age": "18-40"}):
        users: dict[str, set[int]] = defaultdict(set)
        for r in ref.matching(rows, filters):
            if r.user is not None and start <= r.day <= end:
                users[r.gender or "(none)"].add(r.user)
        got = breakdown_totals.uncached(
            org, dimension="gender", start=start, end=end, metric="active_users", filters=filters
        )
        assert {g["key"]: g["value"] for g in got} == {k: len(v) for k, v in users.items()}


def test_distinct_user_reads_query_counts(long_data, django_assert_num_queries):
    org = long_data["org"]
    with django_assert_num_queries(1):  # every week in one statement
        queries.timeseries.uncached(org, metric="active_users", interval="week", start=long_data["first"], end=LAST)
    with django_assert_num_queries(1):
        queries.retention.uncached(org, weeks=20, end=LAST)
    with django_assert_num_queries(3):  # totals, distinct users of both periods, features tracked
        queries.usage_summary.uncached(org, LAST - timedelta(days=89), LAST, filters={"gender": "F"})


def test_people_weekly_breakdown_equals_raw_events(long_data):
    org = long_data["org"]
    rows = ref.load(org)
    start, end = LAST - timedelta(days=89), LAST
    for dimension, key_of in (("gender", lambda r: r.gender or "(none)"), ("age", age_band)):
        for filters in ({}, {"gender": "F"}):
            weeks: dict[str, dict[date, set[int]]] = defaultdict(lambda: defaultdict(set))
            for r in ref.matching(rows, filters):
                if r.user is not None and start <= r.day <= end:
                    weeks[key_of(r)][max(week_monday(r.day), start)].add(r.user)
            got = breakdown_series.uncached(
                org, dimension=dimension, start=start, end=end, interval="week", metric="active_users", filters=filters
            )
            assert {g["key"]: {p["date"]: p["value"] for p in g["points"] if p["value"]} for g in got} == {
                k: {w: len(u) for w, u in by_week.items()} for k, by_week in weeks.items()
            }, (dimension, filters)


def test_people_weekly_by_a_user_property_equals_raw_events(long_data, monkeypatch):
    """Weekly users per value of an end-user property (the bitmask path, where one statement
    ranks the values and counts their weeks): more values than a breakdown shows, so the
    rest is "other"; under person and feature filters; the week bits spread over several
    columns, as a range past 62 weeks spreads them."""
    org = long_data["org"]
    profiles = list(EndUser.objects.filter(organization=org).order_by("pk"))
    for i, profile in enumerate(profiles):
        if i % 7:  # every seventh user without the property: "(none)"
            profile.properties = {**(profile.properties or {}), "tier": f"t{i % 13:02d}"}
    EndUser.objects.bulk_update(profiles, ["properties"])
    tier = {p.pk: (p.properties or {}).get("tier") or "(none)" for p in profiles}
    monkeypatch.setattr(active, "_WEEKS_PER_COLUMN", 4)
    rows = ref.load(org)
    start, end = LAST - timedelta(days=120), LAST
    for filters in ({}, {"gender": "F"}, {"age": "18-40"}, {"feature": rows[0].feature}):
        kept = [r for r in ref.matching(rows, filters) if r.user and start <= r.day <= end]
        users: dict[str, set[int]] = defaultdict(set)
        weeks: dict[str, Counter[date]] = defaultdict(Counter)
        for r in kept:
            users[tier[r.user]].add(r.user)
        for user, monday in {(r.user, max(week_monday(r.day), start)) for r in kept}:
            weeks[tier[user]][monday] += 1
        ranked = sorted(users, key=lambda value: (-len(users[value]), value))
        assert len(ranked) > BREAKDOWN_LIMIT or filters, "unfiltered, some values go into other"
        expected = {value: dict(weeks[value]) for value in ranked[:BREAKDOWN_LIMIT]}
        rest = sum((weeks[value] for value in ranked[BREAKDOWN_LIMIT:]), Counter())
        if rest:
            expected["other"] = dict(rest)
        got = breakdown_series.uncached(
            org, dimension="user.tier", start=start, end=end, interval="week", metric="active_users", filters=filters
        )
        assert [g["key"] for g in got] == list(expected), filters
        assert {g["key"]: {p["date"]: p["value"] for p in g["points"] if p["value"]} for g in got} == expected, filters
        # The totals rank the same values, each its users over the range; "other" the rest's.
        totals = breakdown_totals.uncached(
            org, dimension="user.tier", start=start, end=end, metric="active_users", filters=filters
        )
        assert [t["key"] for t in totals] == list(expected), filters
        counted = {value: len(users[value]) for value in ranked[:BREAKDOWN_LIMIT]}
        if rest:
            counted["other"] = sum(len(users[value]) for value in ranked[BREAKDOWN_LIMIT:])
        assert {t["key"]: t["value"] for t in totals} == counted, filters


def age_band(r):
    if r.age is None:
        return "(none)"
    return "<18" if r.age < 18 else "18-40" if r.age <= 40 else ">40"


def test_user_list_pages_sorted_by_figures_equal_raw_events(org):
    from core.days import today

    last = today()
    randomized(org, seed=9, days=40, last=last)
    rows = ref.load(org)
    expected = ref.users(rows, last - timedelta(days=29), last, first_seen_of(org))
    keys = ("user_id", "events", "avg_session_duration", "first_seen", "last_seen", "top_feature")
    got = []
    for page in (1, 2, 3, 4, 5, 6, 7):
        answer = queries.user_activity_page.uncached(org, days=30, page=page, page_size=5)
        assert answer["count"] == len(expected)
        got += answer["results"]
    assert [{k: u[k] for k in keys} for u in got] == [{k: u[k] for k in keys} for u in expected]
    by_last_seen = queries.user_activity_page.uncached(org, days=30, sort="-last_seen", page_size=100)["results"]
    assert [u["last_seen"] for u in by_last_seen] == sorted((u["last_seen"] for u in expected), reverse=True)


def _accounts_people_from_events(rows, end):
    """{account pk: (users whose last event of both windows is in the recent one, that last
    event)} from the raw events, through each end user's account now."""
    recent_start, previous_start = _windows(end)
    last: dict[int, tuple[int, object]] = {}
    for r in rows:
        if r.user is not None and r.account is not None and previous_start <= r.day <= end:
            if r.user not in last or r.ts > last[r.user][1]:
                last[r.user] = (r.account, r.ts)
    people: dict[int, tuple[int, object]] = {}
    for account, ts in last.values():
        active, latest = people.get(account, (0, None))
        recent = int(ts.date() >= recent_start)
        people[account] = (active + recent, ts if latest is None or ts > latest else latest)
    return people


def test_accounts_active_users_and_last_seen_equal_raw_events(long_data):
    """The Accounts list's active users (the bitmasks) and last events (the account rows) equal
    the raw events for windows ending anywhere in the data (across blocks), also after an end
    user moves to another account: the active users follow their account now, the last events
    (as the events) once the days are rolled up again."""
    org = long_data["org"]

    def listed(end):
        rows = account_list.uncached(org, end=end, page_size=None)["results"]
        accounts = {a.external_id: a.pk for a in long_data["accounts"]}
        return {
            accounts[r["account_id"]]: (r["active_users"], r["last_seen"])
            for r in rows
            if r["last_seen"] or r["active_users"]
        }

    # A user whose last event falls on the first day of LAST's recent window (the boundary).
    recent_start, previous_start = _windows(LAST)
    edge = end_user(org, "edge", account=long_data["accounts"][0], first_seen=at(str(previous_start)))
    for day in (previous_start, recent_start):
        event(org, long_data["features"][0], edge, at(str(day), "00:00:00"))
        rollup.rollup_day(day, org)
    first = long_data["first"]
    ends = [first + timedelta(days=n) for n in range(0, (LAST - first).days + 1, 2)] + [LAST]
    mover = EndUser.objects.filter(organization=org, account__isnull=False).order_by("pk").first()
    for moved in (False, True):
        if moved:
            mover.account = next(a for a in long_data["accounts"] if a.pk != mover.account_id)
            mover.save(update_fields=["account"])
            rows = ref.load(org)
            for end in ends:
                active = {pk: figures[0] for pk, figures in _accounts_people_from_events(rows, end).items()}
                assert {pk: figures[0] for pk, figures in listed(end).items() if figures[0]} == {
                    pk: n for pk, n in active.items() if n
                }, end
            for day in UsageEvent.objects.filter(end_user=mover).dates("timestamp", "day"):
                rollup.rollup_day(day, org)
        rows = ref.load(org)
        for end in ends:
            assert listed(end) == _accounts_people_from_events(rows, end), (end, moved)
