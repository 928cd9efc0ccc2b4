"""The per-segment recency rows of all features (DailySegmentRecency): distinct active users
per age band and gender, over any range of up to RECENCY_DAYS + 1 days and per week, under
no filter or the age and gender filters, read from at most 16 rows a day, equal the raw
events — in the person breakdowns, the summary's active users and the weekly series; each
day's rows add up to its active users; no bitmask row is read; stale days fall back to the
bitmasks until rebuilt; a late event's re-roll marks the later days; the migration's marks
and days built without the rows heal."""

import math
import random
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.models import DailyOrgUsage, DailySegmentRecency, FeatureRecencyStale
from analytics.queries import active, breakdown_series, breakdown_totals
from analytics.queries.common import week_monday
from analytics.recency import RECENCY_DAYS, recency_stale_rebuild
from telemetry.models import EndUser

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, end_user, event, feature, migration_fill_run, random_events, random_ranges

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)
FIRST = LAST - timedelta(days=129)
AGES = (None, 12, 17, 18, 30, 40, 41, 70)
GENDERS = ("", "F", "M", "O")
FILTERS = [{}, {"gender": "F"}, {"age": "18-40"}, {"age": ">40", "gender": "O"}]
LONG_GAPS = (56, 57, 100, 112, 113)


def _build(org):
    rng = random.Random(47)
    features = [feature(org, key) for key in ("search", "export", "share")]
    people = [
        end_user(org, f"g{i:02d}", first_seen=at(str(FIRST)), age=AGES[i % len(AGES)], gender=GENDERS[i % 4])
        for i in range(40)
    ]
    random_events(org, rng, features, people, FIRST, 130, 900)
    # Users back after long absences: gaps that reach into the blocks before the day's (56,
    # 100 and 112 days, the longest a row holds) and one just past them (113: "0").
    returns = {}
    for i, gap in enumerate(LONG_GAPS):
        person = end_user(org, f"back{gap}", first_seen=at(str(FIRST)), age=30, gender="MF"[i % 2])
        first_day = FIRST + timedelta(days=2 + i)
        for day in (first_day, first_day + timedelta(days=gap)):
            event(org, features[0], person, at(str(day), "12:00:00"))
        returns[gap] = first_day + timedelta(days=gap)
    rollup.rollup_range(FIRST, LAST, org)
    return {"features": features, "people": people, "returns": returns}


@pytest.fixture(scope="module")
def data(module_org, django_db_blocker):
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_build(module_org)}


def _value(row, dimension):
    if dimension == "gender":
        return row.gender or "(none)"
    return next((band for band, inside in ref.AGE_BANDS.items() if inside(row.age)), "(none)")


def raw_users(org, start, end, filters, dimension):
    """{value: distinct users within start..end} from the raw events."""
    users = defaultdict(set)
    for row in ref.matching(ref.load(org), filters):
        if row.user is not None and start <= row.day <= end:
            users[_value(row, dimension)].add(row.user)
    return {value: len(ids) for value, ids in users.items()}


def raw_weeks(org, start, end, filters, dimension):
    """{value: [users of each week of start..end]} from the raw events, weeks from Monday."""
    weeks = defaultdict(lambda: defaultdict(set))
    for row in ref.matching(ref.load(org), filters):
        if row.user is not None and start <= row.day <= end:
            weeks[_value(row, dimension)][week_monday(row.day)].add(row.user)
    mondays = _mondays(start, end)
    return {value: [len(per_week[m]) for m in mondays] for value, per_week in weeks.items()}


def _mondays(start, end):
    return [week_monday(start) + timedelta(days=7 * k) for k in range((end - week_monday(start)).days // 7 + 1)]


def ranges(n, seed):
    fixed = [(FIRST, FIRST + timedelta(days=RECENCY_DAYS)), (LAST, LAST), (LAST - timedelta(days=29), LAST)]
    return random_ranges(FIRST, LAST, RECENCY_DAYS, n, seed, fixed)


def person_breakdowns(org, start, end, filters, dimension):
    """(users per value, weeks per value) as the breakdown API answers them."""
    totals = breakdown_totals.uncached(
        org, dimension=dimension, start=start, end=end, metric="active_users", filters=dict(filters)
    )
    series = breakdown_series.uncached(
        org, dimension=dimension, start=start, end=end, interval="week", metric="active_users", filters=dict(filters)
    )
    ranked = [(row["key"], row["value"]) for row in totals]
    return ranked, {line["key"]: [point["value"] for point in line["points"]] for line in series}


def expected_breakdowns(org, start, end, filters, dimension):
    users = raw_users(org, start, end, filters, dimension)
    ranked = sorted(users.items(), key=lambda item: (-item[1], item[0]))
    return ranked, raw_weeks(org, start, end, filters, dimension)


def test_person_breakdowns_answer_every_range_and_filter_as_the_raw_events(data):
    org = data["org"]
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    for i, filters in enumerate(FILTERS):
        for start, end in ranges(8, seed=i):
            for dimension in ("age", "gender"):
                got = person_breakdowns(org, start, end, filters, dimension)
                assert got == expected_breakdowns(org, start, end, filters, dimension), (filters, start, end)


def test_summary_users_and_weekly_series_answer_as_the_raw_events(data):
    org = data["org"]
    for i, filters in enumerate(FILTERS):
        for start, end in ranges(8, seed=10 + i):
            before = (start - timedelta(days=(end - start).days + 1), start - timedelta(days=1))
            expected = [
                sum(raw_users(org, first, last, filters, "gender").values()) for first, last in ((start, end), before)
            ]
            assert active.distinct_users(org, filters, [(start, end), before]) == expected, (filters, start, end)
            weeks = raw_weeks(org, start, end, filters, "gender")
            totals = [sum(per_value[k] for per_value in weeks.values()) for k in range(len(_mondays(start, end)))]
            got = active.filtered_weekly_users(org, filters, start, end)
            assert [got.get(monday, 0) for monday in _mondays(start, end)] == totals, (filters, start, end)


def test_each_days_rows_add_up_to_its_active_users(data):
    org = data["org"]
    totals: dict[date, int] = defaultdict(int)
    for row in DailySegmentRecency.objects.filter(organization=org):
        assert row.gaps and all(users > 0 for users in row.gaps.values())
        totals[row.date] += sum(row.gaps.values())
    active_days = DailyOrgUsage.objects.filter(organization=org, active_users__gt=0)
    assert totals == dict(active_days.values_list("date", "active_users"))


def test_reads_touch_no_bitmask_row(data):
    org = data["org"]
    start, end = LAST - timedelta(days=89), LAST
    with CaptureQueriesContext(connection) as queries:
        active.distinct_users(org, {"gender": "F"}, [(start, end), (start - timedelta(days=90), start)])
        active.filtered_weekly_users(org, {"age": "18-40"}, start, end)
        person_breakdowns(org, start, end, {}, "age")
    assert queries.captured_queries
    assert not [q for q in queries.captured_queries if "activedays" in q["sql"]]


def test_stale_days_longer_ranges_and_other_filters_fall_back_to_the_bitmasks(data):
    org = data["org"]
    start, end = FIRST, FIRST + timedelta(days=RECENCY_DAYS + 1)
    with CaptureQueriesContext(connection) as queries:
        assert person_breakdowns(org, start, end, {}, "gender") == expected_breakdowns(org, start, end, {}, "gender")
    assert [q for q in queries.captured_queries if "useractivedays" in q["sql"]]
    day = LAST - timedelta(days=10)
    start = day - timedelta(days=20)
    FeatureRecencyStale.objects.create(organization=org, date=day)
    with CaptureQueriesContext(connection) as queries:
        got = person_breakdowns(org, start, day, {"gender": "M"}, "age")
    assert [q for q in queries.captured_queries if "useractivedays" in q["sql"]]
    assert got == expected_breakdowns(org, start, day, {"gender": "M"}, "age")
    assert recency_stale_rebuild(org.pk, budget_seconds=math.inf) == 1
    with CaptureQueriesContext(connection) as queries:
        assert person_breakdowns(org, start, day, {"gender": "M"}, "age") == expected_breakdowns(
            org, start, day, {"gender": "M"}, "age"
        )
    assert not [q for q in queries.captured_queries if "activedays" in q["sql"]]
    # A filter the segment rows do not carry: the bitmasks.
    with CaptureQueriesContext(connection) as queries:
        active.distinct_users(org, {"feature": data["features"][0].pk}, [(start, day)])
    assert [q for q in queries.captured_queries if "activedays" in q["sql"]]


def test_days_built_without_the_rows_heal_and_the_migration_marks_built_days(data):
    org = data["org"]
    rolled = {(r.date, r.age_band, r.gender): r.gaps for r in DailySegmentRecency.objects.filter(organization=org)}
    day = LAST - timedelta(days=20)
    DailySegmentRecency.objects.filter(organization=org, date=day).delete()
    # Unmarked and without rows (rolled by older code): counted from the bitmasks, not as 0.
    start = day - timedelta(days=6)
    with CaptureQueriesContext(connection) as queries:
        assert active.distinct_users(org, {}, [(start, day)]) == [sum(raw_users(org, start, day, {}, "age").values())]
    assert [q for q in queries.captured_queries if "useractivedays" in q["sql"]]
    assert recency_stale_rebuild(org.pk) == 1
    DailySegmentRecency.objects.filter(organization=org).delete()
    migration_fill_run("0023_segment_recency")
    rolled_days = DailyOrgUsage.objects.filter(organization=org, active_users__gt=0).count()
    assert FeatureRecencyStale.objects.filter(organization=org).count() == rolled_days
    start = LAST - timedelta(days=29)
    assert active.distinct_users(org, {}, [(start, LAST)]) == [sum(raw_users(org, start, LAST, {}, "age").values())]
    recency_stale_rebuild(org.pk, budget_seconds=math.inf)
    rebuilt = {(r.date, r.age_band, r.gender): r.gaps for r in DailySegmentRecency.objects.filter(organization=org)}
    assert rebuilt == rolled


def test_users_back_after_long_absences_count_once_whichever_day_the_range_starts(data):
    """Ranges starting on each side of a returning user's previous day: they count once, on
    their previous day when the range holds it, else on their return (the gap tested
    against the days since the range's start, through the rows of the blocks before)."""
    org = data["org"]
    for gap, back in data["returns"].items():
        for days_before in (0, 1, gap - 2, gap - 1, gap, min(gap + 1, RECENCY_DAYS)):
            start = back - timedelta(days=days_before)
            for filters in ({}, {"gender": "MF"[LONG_GAPS.index(gap) % 2]}):
                expected = sum(raw_users(org, start, back, filters, "gender").values())
                assert active.distinct_users(org, filters, [(start, back)]) == [expected], (gap, days_before)
                weeks = raw_weeks(org, start, back, filters, "age")
                got = active.filtered_weekly_users(org, filters, start, back)
                mondays = _mondays(start, back)
                want = [sum(per_value[k] for per_value in weeks.values()) for k in range(len(mondays))]
                assert [got.get(monday, 0) for monday in mondays] == want, (gap, days_before)
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()


def test_a_user_counts_in_the_segment_their_days_were_built_in(data):
    """As the segment rollups: a user whose gender changed counts under the old one until
    their days are rolled up again, then under the new one."""
    org, search = data["org"], data["features"][0]
    person = end_user(org, "switcher", first_seen=at(str(FIRST)), age=30, gender="F")
    day = LAST - timedelta(days=2)
    event(org, search, person, at(str(day)))
    rollup.rollup_day(day, org)
    start, end = day - timedelta(days=6), day
    before = dict(person_breakdowns(org, start, end, {}, "gender")[0])
    EndUser.objects.filter(pk=person.pk).update(gender="M")
    assert dict(person_breakdowns(org, start, end, {}, "gender")[0]) == before
    rollup.rollup_range(start, end, org)
    after = dict(person_breakdowns(org, start, end, {}, "gender")[0])
    assert (after["F"], after["M"]) == (before["F"] - 1, before["M"] + 1)
    assert person_breakdowns(org, start, end, {}, "gender") == expected_breakdowns(org, start, end, {}, "gender")


def test_a_late_event_re_rolled_marks_the_later_days_until_they_are_rebuilt(data):
    """A user back on an earlier day: the later days' gaps shrink; the re-roll marks them,
    reads over them count from the bitmasks, and the rebuild makes the rows right again."""
    org, search = data["org"], data["features"][0]
    day = LAST - timedelta(days=15)
    there = {row.user for row in ref.load(org) if row.day == day}
    absent = next(person for person in data["people"] if person.gender == "F" and person.pk not in there)
    event(org, search, absent, at(str(day), "09:00:00"))
    rollup.rollup_day(day, org)
    assert FeatureRecencyStale.objects.filter(organization=org, date=day + timedelta(days=1)).exists()
    start, end = day - timedelta(days=3), day + timedelta(days=30)
    assert person_breakdowns(org, start, end, {}, "gender") == expected_breakdowns(org, start, end, {}, "gender")
    recency_stale_rebuild(org.pk, budget_seconds=math.inf)
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    for filters in ({}, {"gender": "F"}):
        assert person_breakdowns(org, start, end, filters, "age") == expected_breakdowns(
            org, start, end, filters, "age"
        )
