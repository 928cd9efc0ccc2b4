"""The weekly totals (UserActiveDays.events_w<k>) kept exact by the rollup (re-rolls, late and
vanished events, the migration's fill), and the ranked reads built on them (`queries.ranked`:
top users, the user list by most events) equal to the raw events over random ranges that
cut blocks, filters, searches and pages included, with their query counts pinned."""

import random
from collections import defaultdict
from datetime import date, timedelta

import pytest

from analytics import queries, rollup
from analytics.active_days import WEEK_FIELDS, block_of, week_of
from analytics.models import DailyUserUsage, UserActiveDays
from analytics.queries import ranked
from analytics.queries.common import week_monday
from core.days import today
from telemetry.models import UsageEvent

from . import raw_reference as ref
from .conftest import shared_admin_fixture, shared_organisation
from .factories import at, migration_fill_run
from .test_rollup_equivalence import first_seen_of, randomized

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)  # mid-block: ranges ending here cut their last block
KEYS = ("user_id", "events", "avg_session_duration", "first_seen", "last_seen", "top_feature")


def totals_from_days(org):
    """{(end user, block): events per week} as the per-user daily rows say they should be."""
    expected: dict[tuple[int, date], list[int]] = defaultdict(lambda: [0] * len(WEEK_FIELDS))
    for uid, day, events in DailyUserUsage.objects.filter(organization=org).values_list(
        "end_user_id", "date", "event_count"
    ):
        expected[(uid, block_of(day))][week_of(day)] += events
    return {key: tuple(weeks) for key, weeks in expected.items()}


def block_totals(org):
    rows = UserActiveDays.objects.filter(organization=org).values_list("end_user_id", "block_start", *WEEK_FIELDS)
    return {(uid, block): tuple(weeks) for uid, block, *weeks in rows}


@pytest.fixture(scope="module")
def ranked_shared(django_db_setup, django_db_blocker):
    """The long data set, rolled up once for the module (12-19 s a test on PostgreSQL): the
    tests that change it roll back with their transaction."""

    def build(admin):
        return randomized(admin.organization, seed=57, days=150, n_users=40, n_events=1500, last=LAST)

    with shared_organisation(django_db_blocker, build) as shared:
        yield shared


admin_user = shared_admin_fixture("long_data", "ranked_shared")


@pytest.fixture
def long_data(ranked_shared, org):
    return ranked_shared[1]


def test_rollup_keeps_block_totals_equal_to_the_daily_rows(org, long_data):
    assert block_totals(org) == totals_from_days(org)
    assert len({block for _, block in block_totals(org)}) >= 3
    before = block_totals(org)
    rollup.rollup_range(long_data["first"], LAST, org)
    assert block_totals(org) == before


def test_late_and_vanished_events_change_their_block_once(org, long_data):
    day = LAST - timedelta(days=3)
    gone = UsageEvent.objects.filter(organization=org, end_user__isnull=False, timestamp__gte=at(str(day), "00:00:00"))
    person = gone.first().end_user
    UsageEvent.objects.filter(end_user=person, timestamp__gte=at(str(day), "00:00:00")).delete()
    UsageEvent.objects.create(
        organization=org, feature=long_data["features"][0], end_user=person, timestamp=at(str(day), "10:00:00")
    )
    UsageEvent.objects.create(
        organization=org, feature=long_data["features"][1], end_user=None, timestamp=at(str(day), "11:00:00")
    )
    for when in (day, day + timedelta(days=1), day + timedelta(days=2), day + timedelta(days=3)):
        rollup.rollup_day(when, org)
        rollup.rollup_day(when, org)
    assert block_totals(org) == totals_from_days(org)
    # Every event of a user's block gone: the row goes with its last bit. Only their days
    # are re-rolled: one test transaction holds the locks of every day's temporary tables.
    days = set(DailyUserUsage.objects.filter(end_user=person).values_list("date", flat=True))
    UsageEvent.objects.filter(end_user=person).delete()
    for when in sorted(days):
        rollup.rollup_day(when, org)
    assert block_totals(org) == totals_from_days(org)
    assert not [key for key in block_totals(org) if key[0] == person.pk]


def test_migration_fill_equals_the_rollup(org, long_data):
    rolled = block_totals(org)
    UserActiveDays.objects.update(**dict.fromkeys(WEEK_FIELDS, 0))
    migration_fill_run("0010_user_block_events")
    assert block_totals(org) == rolled


def shaped(users):
    return [{k: u[k] for k in KEYS} for u in users]


def random_ranges(first, last, n, seed):
    rng = random.Random(seed)
    span = (last - first).days
    monday = week_monday(last) - timedelta(days=35)
    ranges = [(first, last), (last - timedelta(days=29), last), (last - timedelta(days=89), last)]
    ranges.append((monday, monday + timedelta(days=27)))  # whole weeks: no edge days
    for _ in range(n):
        a, b = sorted(rng.randrange(span + 1) for _ in range(2))
        ranges.append((first + timedelta(days=a), first + timedelta(days=b)))
    return ranges


def test_top_users_over_random_ranges_and_filters_equal_raw_events(org, long_data):
    rows = ref.load(org)
    account = long_data["accounts"][1]
    filter_sets = [{}, {"gender": "F"}, {"age": "18-40"}, {"account": account}, {"account": account, "age": ">40"}]
    for i, filters in enumerate(filter_sets):
        for start, end in random_ranges(long_data["first"], LAST, 4, seed=i):
            expected = ref.users(ref.matching(rows, filters), start, end, first_seen_of(org))
            for limit in (1, 3, 10, 100):
                got = queries.top_users.uncached(org, limit=limit, start=start, end=end, filters=dict(filters))
                assert shaped(got) == shaped(expected[:limit]), (filters, start, end, limit)


def test_bounds_read_a_few_at_a_time_rank_the_same(org, long_data, monkeypatch):
    """The leading bounds are read as far as a ranking needs, twice as far each time: with
    only two read at first, every ranking and page still equals the raw events (the bounds
    are read again several times) and the user list still counts every active user."""
    monkeypatch.setattr(ranked, "LEADING_BOUNDS", 2)
    monkeypatch.setattr(ranked, "FIRST_BATCH_MIN", 1)
    rows = ref.load(org)
    for start, end in random_ranges(long_data["first"], LAST, 3, seed=5):
        expected = ref.users(rows, start, end, first_seen_of(org))
        for limit in (1, 3, 10, 100):
            got = queries.top_users.uncached(org, limit=limit, start=start, end=end)
            assert shaped(got) == shaped(expected[:limit]), (start, end, limit)
        for page in (1, 2, 4):
            got = queries.user_activity_page.uncached(org, start=start, end=end, page=page, page_size=6)
            assert got["count"] == len(expected)
            assert shaped(got["results"]) == shaped(expected[(page - 1) * 6 : page * 6]), (start, end, page)


class ReReadBounds:
    """`ranked.Bounds` whose reads after the first see other rows (a rollup committed in
    between)."""

    def __init__(self, first, later):
        self.first, self.later, self.reads = first, later, 0
        self.count = len(first)

    def upto(self, n):
        self.reads += 1
        return (self.first if self.reads == 1 else self.later)[:n]


def test_bounds_that_change_between_reads_end_the_walk_and_take_each_user_once(org, long_data, monkeypatch):
    """A re-read may see fewer users than the first read counted, or the same users shifted:
    the ranking walk ends with the users it has (it does not index past them) and looks at
    each user once."""
    start, end = LAST - timedelta(days=40), LAST
    real = ranked.user_bounds(org, start=start, end=end, filters={}).upto(100)
    assert len(real) >= 12
    # A top 1 reads 4 bounds first, then looks at the fifth: the re-read has only 3.
    shrinking = ReReadBounds(real[:5], real[:3])
    rows = ranked.top_rows(org, bounds=shrinking, start=start, end=end, limit=1)
    assert len(rows) == 1 and shrinking.reads >= 2
    # Equal bounds, so the walk goes on: a top 2 reads 8 first, then the re-reads see the last
    # user moved to the top, everyone else one place down (the eighth would come again).
    ids = [uid for uid, _ in real[:12]]
    first = [(uid, 10**6) for uid in ids]
    asked: list[int] = []
    outside = ranked._outside

    def recorded(org, ids, start, end):
        asked.extend(ids)
        return outside(org, ids, start, end)

    monkeypatch.setattr(ranked, "_outside", recorded)
    monkeypatch.setattr(ranked, "FIRST_BATCH_MIN", 1)
    ranked.top_rows(org, bounds=ReReadBounds(first, first[-1:] + first[:-1]), start=start, end=end, limit=2)
    assert len(asked) > 8 and len(asked) == len(set(asked))


def test_top_users_ties_rank_by_id_past_the_cut(org):
    """Users with equal events across the cut: the lower ids rank, however loose the bounds
    of the others are (events outside the range raise their bound, not their rank)."""
    last = date(2025, 6, 11)
    data = randomized(org, seed=3, days=60, n_users=12, n_events=300, last=last)
    rows = ref.load(org)
    for start, end in random_ranges(data["first"], last, 12, seed=99):
        expected = ref.users(rows, start, end, first_seen_of(org))
        for limit in range(1, 8):
            got = queries.top_users.uncached(org, limit=limit, start=start, end=end)
            assert shaped(got) == shaped(expected[:limit]), (start, end, limit)


def test_user_list_by_events_pages_and_search_equal_raw_events(org):
    last = today()
    randomized(org, seed=11, days=70, n_users=45, n_events=1200, last=last)
    rows = ref.load(org)
    for days in (1, 7, 30, 60):
        start = last - timedelta(days=days - 1)
        expected = ref.users(rows, start, last, first_seen_of(org))
        for page in (1, 2, 3, 9):
            got = queries.user_activity_page.uncached(org, days=days, page=page, page_size=7)
            assert got["count"] == len(expected)
            assert shaped(got["results"]) == shaped(expected[(page - 1) * 7 : page * 7]), (days, page)
    start = last - timedelta(days=29)
    wanted = [u for u in ref.users(rows, start, last, first_seen_of(org)) if "r1" in u["user_id"]]
    got = queries.user_activity_page.uncached(org, days=30, search="r1", page_size=5)
    assert got["count"] == len(wanted)
    assert shaped(got["results"]) == shaped(wanted[:5])
    gender = queries.user_activity_page.uncached(org, days=30, page_size=5, filters={"gender": "F"})
    want = ref.users(ref.matching(rows, {"gender": "F"}), start, last, first_seen_of(org))
    assert (gender["count"], shaped(gender["results"])) == (len(want), shaped(want[:5]))


def test_ranked_reads_query_counts(org, long_data, django_assert_num_queries):
    start = LAST - timedelta(days=29)
    # The bounds, the edge days of one batch of candidates, the winners' figures, their
    # profiles, their top features.
    with django_assert_num_queries(5):
        queries.top_users.uncached(org, limit=3, start=start, end=LAST)
    with django_assert_num_queries(5):
        queries.user_activity_page.uncached(org, start=start, end=LAST, page_size=5)
    # Whole weeks (Monday to Sunday): the bounds are the events, no edge day is read.
    monday = week_monday(LAST) - timedelta(days=28)
    with django_assert_num_queries(4):
        queries.top_users.uncached(org, limit=3, start=monday, end=monday + timedelta(days=20))
