"""The per-feature recency rows (DailyFeatureRecency): a feature's distinct users over any
range of up to RECENCY_DAYS + 1 days read from one row per feature and day equal the raw
events, across blocks and at the look-back's edges; a re-roll of an earlier day marks the
later days stale, reads then count from the bitmasks, and the end of the run rebuilds them;
the migration's marks rebuild to what the rollup writes."""

import math
import random
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.models import DailyFeatureRecency, DailyOrgUsage, FeatureRecencyStale
from analytics.queries import active
from analytics.recency import (
    REBUILD_BUDGET_SECONDS,
    REBUILD_BUDGET_SECONDS_WEB,
    RECENCY_DAYS,
    absent_before,
    rebuild_budget,
    recency_feature_users,
    recency_stale_rebuild,
)
from telemetry.models import UsageEvent

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, end_user, event, feature, migration_fill_run, random_events

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)
FIRST = LAST - timedelta(days=159)
# Days of use (offsets from FIRST) of users whose gaps sit at the look-back's edges: 112
# days (the longest a row sees), 113 (one more: "not within"), a block apart, a day apart.
EDGE_USERS = {"g112": (3, 115), "g113": (4, 117, 118), "g56": (10, 66, 122, 123), "g1": (150, 151, 159)}


def _build(org):
    rng = random.Random(23)
    features = [feature(org, key) for key in ("search", "export", "share")]
    people = [end_user(org, f"r{i:02d}", first_seen=at(str(FIRST))) for i in range(30)]
    random_events(org, rng, features, people, FIRST, 160, 900)
    for name, offsets in EDGE_USERS.items():
        person = end_user(org, name, first_seen=at(str(FIRST)))
        for offset in offsets:
            event(org, features[0], person, at(str(FIRST + timedelta(days=offset))))
    rollup.rollup_range(FIRST, LAST, org)
    return {"features": features}


@pytest.fixture(scope="module")
def data(module_org, django_db_blocker):
    """Built and rolled up once for the module (tests that change it do so inside their own
    transaction, rolled back after them)."""
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_build(module_org)}


def raw_users(org, start, end):
    users: dict[int, set[int]] = defaultdict(set)
    for r in ref.load(org):
        if r.user is not None and start <= r.day <= end:
            users[r.feature].add(r.user)
    return {fid: len(u) for fid, u in users.items()}


def ranges(n, seed):
    rng = random.Random(seed)
    found = [(FIRST + timedelta(days=112), LAST), (FIRST, FIRST + timedelta(days=RECENCY_DAYS)), (LAST, LAST)]
    while len(found) < n:
        start = FIRST + timedelta(days=rng.randrange(160))
        end = start + timedelta(days=rng.randrange(RECENCY_DAYS + 1))
        if end <= LAST:
            found.append((start, end))
    return found


def test_absent_before_counts_users_away_k_days():
    got = absent_before({0: 2, 1: 3, 5: 1})
    assert len(got) == RECENCY_DAYS + 1
    assert got[:7] == [6, 3, 3, 3, 3, 2, 2]
    assert got[-1] == 2  # the users not seen within the look-back stay in every entry


def test_rows_answer_every_range_as_the_raw_events(data):
    org = data["org"]
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    for start, end in ranges(40, seed=3):
        assert recency_feature_users(connection.alias, org.pk, start, end) == raw_users(org, start, end), (start, end)
        one = data["features"][0].pk
        expected = raw_users(org, start, end).get(one)
        assert recency_feature_users(connection.alias, org.pk, start, end, one) == ({one: expected} if expected else {})


def test_the_edges_of_the_look_back(data):
    """Ranges from the day after one of an edge user's days to their next: they count there
    exactly when the gap is within the look-back or beyond it, never twice."""
    org = data["org"]
    search = data["features"][0].pk
    for name, offsets in EDGE_USERS.items():
        for before, after in zip(offsets, offsets[1:], strict=False):
            for start in (FIRST + timedelta(days=before), FIRST + timedelta(days=before + 1)):
                end = FIRST + timedelta(days=after)
                if (end - start).days <= RECENCY_DAYS:
                    got = recency_feature_users(connection.alias, org.pk, start, end, search)
                    assert got == {search: raw_users(org, start, end)[search]}, (name, start, end)


def test_longer_ranges_fall_back_to_the_bitmasks(data):
    org = data["org"]
    start, end = FIRST, FIRST + timedelta(days=RECENCY_DAYS + 1)
    assert recency_feature_users(connection.alias, org.pk, start, end) is None
    assert active.feature_users(org, start, end, {}) == raw_users(org, start, end)


def test_unfiltered_reads_touch_no_bitmask_row(data):
    org = data["org"]
    with CaptureQueriesContext(connection) as queries:
        got = active.feature_users(org, LAST - timedelta(days=89), LAST, {})
    assert len(queries.captured_queries) == 1
    assert "userfeatureactivedays" not in queries.captured_queries[0]["sql"]
    assert got == raw_users(org, LAST - timedelta(days=89), LAST)


def test_a_re_rolled_earlier_day_marks_later_days_stale_until_rebuilt(data):
    org = data["org"]
    search, share = data["features"][0], data["features"][2]
    person = end_user(org, "late-comer", first_seen=at(str(FIRST)))
    day = FIRST + timedelta(days=60)
    event(org, search, person, at(str(day + timedelta(days=30))))
    rollup.rollup_day(day + timedelta(days=30), org)
    # A late event before the user's other day: that day's gap changes.
    event(org, search, person, at(str(day)))
    # And an event that vanishes from a day another user's later day counted from.
    victim = UsageEvent.objects.filter(organization=org, feature=share, end_user__isnull=False).order_by("timestamp")[5]
    vanished_day = victim.timestamp.date()
    victim.delete()
    rollup.rollup_day(vanished_day, org)  # marks the days after it, `day` among them
    rollup.rollup_day(day, org)  # rebuilds `day`, marks the ones after it
    stale = set(FeatureRecencyStale.objects.filter(organization=org).values_list("date", flat=True))
    assert day + timedelta(days=30) in stale and day not in stale and vanished_day not in stale
    assert max(stale) <= max(day, vanished_day) + timedelta(days=RECENCY_DAYS)
    start, end = day - timedelta(days=5), day + timedelta(days=40)
    assert recency_feature_users(connection.alias, org.pk, start, end) is None
    assert active.feature_users(org, start, end, {}) == raw_users(org, start, end)  # from the bitmasks
    assert recency_stale_rebuild(org.pk) == len(stale)
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    for start, end in ranges(25, seed=8):
        assert recency_feature_users(connection.alias, org.pk, start, end) == raw_users(org, start, end), (start, end)


def test_a_rollup_run_ends_with_no_stale_day(data):
    org = data["org"]
    UsageEvent.objects.filter(organization=org, timestamp__date=FIRST + timedelta(days=20)).delete()
    rollup.rollup_range(FIRST + timedelta(days=20), FIRST + timedelta(days=21), org)
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    start, end = FIRST + timedelta(days=15), FIRST + timedelta(days=100)
    assert recency_feature_users(connection.alias, org.pk, start, end) == raw_users(org, start, end)


def test_an_unchanged_re_roll_rebuilds_nothing(data):
    org = data["org"]
    before = list(DailyFeatureRecency.objects.filter(organization=org).order_by("id").values_list("id", flat=True))
    rollup.rollup_day(FIRST + timedelta(days=70), org)
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    after = list(DailyFeatureRecency.objects.filter(organization=org).order_by("id").values_list("id", flat=True))
    assert after == before


def test_the_migration_marks_rolled_days_that_rebuild_to_the_rollups_rows(data):
    org = data["org"]
    rolled = {(r.feature_id, r.date): r.absent_before for r in DailyFeatureRecency.objects.filter(organization=org)}
    DailyFeatureRecency.objects.filter(organization=org).delete()
    migration_fill_run("0017_feature_recency")
    rolled_days = DailyOrgUsage.objects.filter(organization=org).values("date").distinct().count()
    assert FeatureRecencyStale.objects.filter(organization=org).count() == rolled_days
    start, end = LAST - timedelta(days=29), LAST
    assert recency_feature_users(connection.alias, org.pk, start, end) is None
    assert active.feature_users(org, start, end, {}) == raw_users(org, start, end)
    recency_stale_rebuild(org.pk)
    rebuilt = {(r.feature_id, r.date): r.absent_before for r in DailyFeatureRecency.objects.filter(organization=org)}
    assert rebuilt == rolled


def test_days_rolled_without_recency_rows_heal_at_the_next_run(data):
    """A day rolled by code older than the recency rows (none built, none marked): the next
    rebuild finds it among the rolled days with users and builds it."""
    org = data["org"]
    day = FIRST + timedelta(days=100)
    DailyFeatureRecency.objects.filter(organization=org, date=day).delete()
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    assert recency_stale_rebuild(org.pk) == 1
    start, end = day - timedelta(days=3), day + timedelta(days=3)
    assert recency_feature_users(connection.alias, org.pk, start, end) == raw_users(org, start, end)
    assert recency_stale_rebuild(org.pk) == 0  # nothing left to heal


def test_a_run_rebuilds_within_its_budget_newest_days_first(data):
    org = data["org"]
    days = [FIRST + timedelta(days=n) for n in (30, 90, 150)]
    FeatureRecencyStale.objects.bulk_create(FeatureRecencyStale(organization=org, date=day) for day in days)
    assert recency_stale_rebuild(org.pk, budget_seconds=0) <= 1
    left = set(FeatureRecencyStale.objects.filter(organization=org).values_list("date", flat=True))
    assert days[0] in left and days[1] in left  # the newest goes first
    start, end = days[0] - timedelta(days=5), days[0] + timedelta(days=5)
    assert recency_feature_users(connection.alias, org.pk, start, end) is None
    assert recency_stale_rebuild(org.pk, budget_seconds=math.inf) == len(left)
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()


def test_a_web_request_rebuilds_for_a_few_seconds_only(settings):
    """`aggregate/run` rolls up inside a request, which the server kills after its timeout."""
    settings.WEB_PROCESS = True
    assert rebuild_budget() == REBUILD_BUDGET_SECONDS_WEB < 30
    settings.WEB_PROCESS = False
    assert rebuild_budget() == REBUILD_BUDGET_SECONDS
