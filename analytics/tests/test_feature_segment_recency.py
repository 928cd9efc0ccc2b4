"""The per-segment recency rows (DailyFeatureSegmentRecency): a feature's distinct users
under the age and gender filters, over any range of up to RECENCY_DAYS + 1 days, read from
one row per feature, day and segment, equal the raw events; each day's segment rows add up
to its DailyFeatureRecency rows; stale days fall back to the bitmasks; the migration's
marks rebuild them; the segment is each user's as their days were rolled up."""

import math
import random
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.models import DailyFeatureRecency, DailyFeatureSegmentRecency, FeatureRecencyStale
from analytics.queries import active
from analytics.recency import RECENCY_DAYS, recency_feature_users, recency_stale_rebuild
from telemetry.models import EndUser

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, end_user, event, feature, migration_fill_run, random_events, random_ranges

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)
FIRST = LAST - timedelta(days=129)
AGES = (None, 12, 17, 18, 30, 40, 41, 70)
GENDERS = ("", "F", "M", "O")
FILTERS = [
    {"gender": "F"},
    {"gender": "M"},
    {"age": "<18"},
    {"age": "18-40"},
    {"age": ">40"},
    {"age": "18-40", "gender": "F"},
    {"age": ">40", "gender": "O"},
]


def _build(org):
    rng = random.Random(41)
    features = [feature(org, key) for key in ("search", "export", "share")]
    people = [
        end_user(org, f"s{i:02d}", first_seen=at(str(FIRST)), age=AGES[i % len(AGES)], gender=GENDERS[i % 4])
        for i in range(40)
    ]
    random_events(org, rng, features, people, FIRST, 130, 1200)
    rollup.rollup_range(FIRST, LAST, org)
    return {"features": features}


@pytest.fixture(scope="module")
def data(module_org, django_db_blocker):
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_build(module_org)}


def raw_users(org, start, end, filters):
    return ref.feature_users(org, start, end, filters)


def ranges(n, seed):
    fixed = [(FIRST, FIRST + timedelta(days=RECENCY_DAYS)), (LAST, LAST), (LAST - timedelta(days=29), LAST)]
    return random_ranges(FIRST, LAST, RECENCY_DAYS, n, seed, fixed)


def segment_users(org, start, end, filters, feature_id=None):
    return recency_feature_users(
        connection.alias, org.pk, start, end, feature_id, age_band=filters.get("age"), gender=filters.get("gender")
    )


def test_rows_answer_every_filter_and_range_as_the_raw_events(data):
    org = data["org"]
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    one = data["features"][1].pk
    for filters in FILTERS:
        for start, end in ranges(12, seed=len(filters["gender" if "gender" in filters else "age"])):
            expected = raw_users(org, start, end, filters)
            assert segment_users(org, start, end, filters) == expected, (filters, start, end)
            only = {one: expected[one]} if expected.get(one) else {}
            assert segment_users(org, start, end, filters, one) == only, (filters, start, end)


def test_each_days_segment_rows_add_up_to_its_feature_rows(data):
    org = data["org"]
    totals: dict[tuple[int, date], int] = defaultdict(int)
    for row in DailyFeatureSegmentRecency.objects.filter(organization=org):
        assert row.gaps and all(users > 0 for users in row.gaps.values())
        totals[row.feature_id, row.date] += sum(row.gaps.values())
    assert totals == {
        (row.feature_id, row.date): row.absent_before[0] for row in DailyFeatureRecency.objects.filter(organization=org)
    }


def test_filtered_reads_touch_no_bitmask_row(data):
    org = data["org"]
    filters = {"age": "18-40", "gender": "F"}
    with CaptureQueriesContext(connection) as queries:
        got = active.feature_users(org, LAST - timedelta(days=89), LAST, filters)
    assert len(queries.captured_queries) == 1
    assert "userfeatureactivedays" not in queries.captured_queries[0]["sql"]
    assert got == raw_users(org, LAST - timedelta(days=89), LAST, filters)


def test_stale_days_and_longer_ranges_fall_back_to_the_bitmasks(data):
    org = data["org"]
    filters = {"gender": "M"}
    start, end = FIRST, FIRST + timedelta(days=RECENCY_DAYS + 1)
    assert segment_users(org, start, end, filters) is None
    assert active.feature_users(org, start, end, filters) == raw_users(org, start, end, filters)
    day = LAST - timedelta(days=10)
    FeatureRecencyStale.objects.create(organization=org, date=day)
    assert segment_users(org, day - timedelta(days=3), day, filters) is None
    assert active.feature_users(org, day - timedelta(days=3), day, filters) == raw_users(
        org, day - timedelta(days=3), day, filters
    )
    assert recency_stale_rebuild(org.pk, budget_seconds=math.inf) == 1
    assert segment_users(org, day - timedelta(days=3), day, filters) == raw_users(
        org, day - timedelta(days=3), day, filters
    )


def test_the_migration_marks_built_days_that_rebuild_to_the_rollups_rows(data):
    org = data["org"]

    def rows():
        return {
            (r.feature_id, r.date, r.age_band, r.gender): r.gaps
            for r in DailyFeatureSegmentRecency.objects.filter(organization=org)
        }

    rolled = rows()
    DailyFeatureSegmentRecency.objects.filter(organization=org).delete()
    migration_fill_run("0020_feature_segment_recency")
    built_days = DailyFeatureRecency.objects.filter(organization=org).values("date").distinct().count()
    assert FeatureRecencyStale.objects.filter(organization=org).count() == built_days
    start, end = LAST - timedelta(days=29), LAST
    assert segment_users(org, start, end, {"gender": "F"}) is None
    assert active.feature_users(org, start, end, {"gender": "F"}) == raw_users(org, start, end, {"gender": "F"})
    recency_stale_rebuild(org.pk, budget_seconds=math.inf)
    assert rows() == rolled


def test_a_user_counts_in_the_segment_their_days_were_rolled_up_in(data):
    """As the segment rollups: a user whose gender changed counts under the old one until
    their days are rolled up again."""
    org, search = data["org"], data["features"][0]
    person = end_user(org, "switcher", first_seen=at(str(FIRST)), age=30, gender="F")
    day = LAST - timedelta(days=2)
    event(org, search, person, at(str(day)))
    rollup.rollup_day(day, org)
    start, end = day - timedelta(days=6), day
    before_f = segment_users(org, start, end, {"gender": "F"})[search.pk]
    EndUser.objects.filter(pk=person.pk).update(gender="M")
    assert segment_users(org, start, end, {"gender": "F"})[search.pk] == before_f
    rollup.rollup_range(start, end, org)
    assert segment_users(org, start, end, {"gender": "F"}).get(search.pk, 0) == before_f - 1
    assert segment_users(org, start, end, {"gender": "M"}) == raw_users(org, start, end, {"gender": "M"})


def test_days_built_without_segment_rows_heal_at_the_next_run(data):
    """A day rebuilt by code older than the segment rows (a worker on the previous release
    after migration 0020 dropped the day's mark): the next rebuild finds it and builds it."""
    org = data["org"]
    day = LAST - timedelta(days=20)
    DailyFeatureSegmentRecency.objects.filter(organization=org, date=day).delete()
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    assert recency_stale_rebuild(org.pk) == 1
    start = day - timedelta(days=3)
    assert segment_users(org, start, day, {"gender": "F"}) == raw_users(org, start, day, {"gender": "F"})
    assert recency_stale_rebuild(org.pk) == 0
