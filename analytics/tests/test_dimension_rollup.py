"""The dimension rollup (DailyDimensionUsage): breakdowns by event type, event property and
user property read from it equal the answers worked out from raw events in plain Python,
on a randomized data set with filters; the per-day caps fold the rest into "other"; a day
re-rolled replaces its rows; no breakdown of these dimensions reads raw events."""

import uuid
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import queries, rollup
from analytics.models import DailyDimensionUsage
from analytics.rollup_dimensions_sql import ALL_SEGMENTS, MAX_EVENT_KEYS, MAX_VALUES
from telemetry.models import EndUser, UsageEvent

from .factories import at, end_user, event, feature, random_usage

pytestmark = pytest.mark.django_db

LAST = date(2025, 4, 20)
DAYS = 12
FIRST = LAST - timedelta(days=DAYS - 1)
DIMENSIONS = ("event_type", "event.source", "event.n", "event.absent", "user.plan", "user.tier", "user.absent")
AGE_BANDS = {"<18": (0, 17), "18-40": (18, 40), ">40": (41, 200)}


def _randomized(org, seed=15):
    features = random_usage(org, FIRST, DAYS, seed)
    rollup.rollup_range(FIRST, LAST, org)
    return features


def _text(value):
    return "(none)" if value is None or value == "" else str(value)


def _kept(e, person, filters):
    if filters.get("feature") and e.feature_id != filters["feature"]:
        return False
    if filters.get("gender") and (person is None or person.gender != filters["gender"]):
        return False
    if filters.get("age"):
        low, high = AGE_BANDS[filters["age"]]
        return person is not None and person.age is not None and low <= person.age <= high
    return True


def _value(e, person, dimension):
    """The event's value of `dimension`; None for a user property of an anonymous event."""
    if dimension == "event_type":
        return _text(e.event_type)
    if dimension.startswith("event."):
        return _text(e.metadata.get(dimension[len("event.") :]))
    return None if person is None else _text(person.properties.get(dimension[len("user.") :]))


def _expected(org, dimension, filters, metric):
    """{value: {day: figure}} from raw events: events, daily distinct users or the average
    session (Σ durations / events with one) per value of `dimension` under `filters`."""
    people = {u.pk: u for u in EndUser.objects.filter(organization=org)}
    events = defaultdict(lambda: defaultdict(int))
    users = defaultdict(lambda: defaultdict(set))
    duration = defaultdict(lambda: defaultdict(float))
    timed = defaultdict(lambda: defaultdict(int))
    for e in UsageEvent.objects.filter(organization=org):
        person = people.get(e.end_user_id)
        if not _kept(e, person, filters):
            continue
        value = _value(e, person, dimension)
        if value is None:
            continue
        day = e.timestamp.date()
        events[value][day] += 1
        if person is not None:
            users[value][day].add(person.pk)
        if e.session_duration is not None:
            duration[value][day] += e.session_duration
            timed[value][day] += 1
    if metric == "events":
        return {v: dict(days) for v, days in events.items()}
    if metric == "active_users":
        return {v: {d: len(s) for d, s in days.items() if s} for v, days in users.items()}
    return {v: {d: round(duration[v][d] / n, 2) for d, n in days.items() if n} for v, days in timed.items()}


FILTER_SETS = ({}, {"feature": 0}, {"gender": "F"}, {"age": "18-40"}, {"feature": 1, "gender": "M"})


@pytest.mark.parametrize("filters", FILTER_SETS)
def test_series_equal_the_raw_events(org, filters):
    features = _randomized(org)
    if "feature" in filters:
        filters = filters | {"feature": features[filters["feature"]].pk}
    for dimension in DIMENSIONS:
        for metric in ("events", "active_users", "avg_session_duration"):
            series = queries.breakdown_series.uncached(
                org, dimension=dimension, start=FIRST, end=LAST, metric=metric, filters=filters
            )
            got = {s["key"]: {p["date"]: p["value"] for p in s["points"] if p["value"]} for s in series}
            want = _expected(org, dimension, filters, metric)
            want = {v: {d: x for d, x in days.items() if x} for v, days in want.items()}
            assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, (dimension, metric)


@pytest.mark.parametrize("filters", FILTER_SETS)
def test_totals_and_per_feature_equal_the_raw_events(org, filters):
    features = _randomized(org)
    if "feature" in filters:
        filters = filters | {"feature": features[filters["feature"]].pk}
    for dimension in DIMENSIONS:
        want = {v: sum(days.values()) for v, days in _expected(org, dimension, filters, "events").items()}
        totals = queries.breakdown_totals.uncached(org, dimension=dimension, start=FIRST, end=LAST, filters=filters)
        assert {r["key"]: r["value"] for r in totals} == want, dimension
        # Top values by events, ties by value.
        assert [r["key"] for r in totals] == sorted(want, key=lambda v: (-want[v], v))
    split = queries.breakdown_by_feature.uncached(org, dimension="event.source", start=FIRST, end=LAST, filters=filters)
    for feat in features:
        if filters.get("feature") not in (None, feat.pk):
            continue
        want = _expected(org, "event.source", filters | {"feature": feat.pk}, "events")
        assert {r["key"]: r["value"] for r in split.get(feat.pk, [])} == {
            v: sum(days.values()) for v, days in want.items()
        }


def test_breakdowns_read_no_raw_event(org):
    _randomized(org)
    for dimension in ("event_type", "event.source", "user.plan"):
        with CaptureQueriesContext(connection) as captured:
            queries.breakdown_series.uncached(org, dimension=dimension, start=FIRST, end=LAST)
            queries.breakdown_series.uncached(
                org, dimension=dimension, start=FIRST, end=LAST, metric="active_users", filters={"gender": "F"}
            )
            queries.breakdown_totals.uncached(org, dimension=dimension, start=FIRST, end=LAST)
            queries.breakdown_by_feature.uncached(org, dimension=dimension, start=FIRST, end=LAST)
        sql = " ".join(q["sql"] for q in captured.captured_queries)
        assert "telemetry_usageevent" not in sql and "analytics_dailyuser" not in sql, dimension


def test_a_day_has_a_dimensions_per_feature_rows_only_with_its_all_feature_rows(org):
    # The reads decide whether a day carries a property (else its marker rows count as
    # "(none)") from the all-features rows alone (breakdowns.sources._dimension_rows).
    _randomized(org)
    rows = DailyDimensionUsage.objects.filter(organization=org)
    per_feature = set(rows.filter(feature__isnull=False).values_list("dimension", "date").distinct())
    all_features = set(rows.filter(feature__isnull=True).values_list("dimension", "date").distinct())
    assert per_feature == all_features and len(per_feature) >= DAYS * 4


def test_caps_fold_the_rest_into_other(org):
    """60 source values on one day: the MAX_VALUES busiest are kept, the rest folded into
    "" (other); 16 event properties: the MAX_EVENT_KEYS busiest are carried."""
    feat = feature(org, "search")
    person = end_user(org, "p", age=30, gender="F", properties={"plan": "pro"})
    when = at(str(LAST), "10:00:00")
    total = 0
    for n in range(60):
        for _ in range(1 + (n >= 55)):
            UsageEvent.objects.create(
                uuid=uuid.uuid4(),
                organization=org,
                feature=feat,
                end_user=person,
                timestamp=when,
                metadata={"source": f"v{n:02d}", **{f"k{k:02d}": "x" for k in range(min(n, 15))}},
            )
            total += 1
    rollup.rollup_day(LAST, org)
    rows = DailyDimensionUsage.objects.filter(
        organization=org, dimension="event.source", feature__isnull=True, age_band=ALL_SEGMENTS
    )
    assert rows.count() == MAX_VALUES + 1
    assert rows.get(value="").event_count == total - sum(r.event_count for r in rows.exclude(value=""))
    carried = set(
        DailyDimensionUsage.objects.filter(organization=org, dimension__startswith="event.k").values_list(
            "dimension", flat=True
        )
    )
    # source is on every event: it takes one of the places.
    assert carried == {f"event.k{k:02d}" for k in range(MAX_EVENT_KEYS - 1)}
    totals = queries.breakdown_totals.uncached(org, dimension="event.source", start=LAST, end=LAST)
    assert [r["key"] for r in totals[:5]] == [f"v{n:02d}" for n in range(55, 60)]
    assert totals[-1]["key"] == "other" and sum(r["value"] for r in totals) == total


def test_rows_summed_over_the_segments_are_their_sums(org):
    """Each row of every segment has its sum over the segments (age band and gender "*"),
    distinct users included (a user is in one segment), and nothing else is summed."""
    _randomized(org)
    sums = defaultdict(lambda: [0, 0, 0, 0.0, 0])
    summed = {}
    for row in DailyDimensionUsage.objects.filter(organization=org):
        key = (row.date, row.feature_id, row.dimension, row.value)
        figures = [row.event_count, row.active_users, row.sessions, row.total_session_duration, row.timed_events]
        if row.age_band == ALL_SEGMENTS:
            assert row.gender == ALL_SEGMENTS and key not in summed
            summed[key] = figures
        else:
            assert row.gender != ALL_SEGMENTS
            sums[key] = [a + b for a, b in zip(sums[key], figures, strict=True)]
    assert summed.keys() == sums.keys() and {"user.plan", "event.source"} <= {key[2] for key in summed}
    for key, figures in summed.items():
        assert figures[:3] + figures[4:] == sums[key][:3] + sums[key][4:]
        assert figures[3] == pytest.approx(sums[key][3])


def test_a_day_rolled_again_is_replaced(org):
    feat = feature(org, "search")
    person = end_user(org, "p", age=30, gender="F", properties={"plan": "pro"})
    when = at(str(LAST), "10:00:00")
    first = event(org, feat, person, when, event_type="click")
    rollup.rollup_day(LAST, org)
    first.delete()
    event(org, feat, person, when, event_type="view")
    person.properties = {"plan": "team"}
    person.save(update_fields=["properties"])
    rollup.rollup_day(LAST, org)
    by_type = queries.breakdown_totals.uncached(org, dimension="event_type", start=LAST, end=LAST)
    by_plan = queries.breakdown_totals.uncached(org, dimension="user.plan", start=LAST, end=LAST)
    assert by_type == [{"key": "view", "value": 1}] and by_plan == [{"key": "team", "value": 1}]


def _summary_expected(org, start, end, filters):
    """The summary KPIs (value, previous) worked out from raw events in plain Python, under
    a user-property filter (`plan`) and optional age band, gender and feature."""
    people = {u.pk: u for u in EndUser.objects.filter(organization=org)}
    length = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    periods = {"value": (start, end), "previous": (prev_end - timedelta(days=length - 1), prev_end)}
    out = {}
    for name, (lo, hi) in periods.items():
        chosen = []
        for e in UsageEvent.objects.filter(organization=org):
            person = people.get(e.end_user_id)
            if person is None or not lo <= e.timestamp.date() <= hi or not _kept(e, person, filters):
                continue
            if str(person.properties.get("plan", "")) != filters["user_properties"]["plan"]:
                continue
            chosen.append(e)
        timed = [e.session_duration for e in chosen if e.session_duration is not None]
        out[name] = {
            "total_events": len(chosen),
            "active_users": len({e.end_user_id for e in chosen}),
            "features_tracked": len({e.feature_id for e in chosen}),
            "sessions": len({(e.timestamp.date(), e.end_user_id, e.session_id) for e in chosen if e.session_id}),
            "avg_session_duration": round(sum(timed) / len(timed), 2) if timed else None,
        }
    return {k: (out["value"][k], out["previous"][k]) for k in out["value"]}


PROPERTY_FILTER_SETS = (
    {"user_properties": {"plan": "pro"}},
    {"user_properties": {"plan": "team"}, "gender": "F"},
    {"user_properties": {"plan": "free"}, "age": "18-40"},
    {"user_properties": {"plan": "pro"}, "feature": 1},
    {"user_properties": {"plan": "free"}, "feature": 0, "gender": "M"},
)


@pytest.mark.parametrize("filters", PROPERTY_FILTER_SETS)
def test_summary_under_a_user_property_equals_the_raw_events_from_the_dimension_rollup(org, filters):
    features = _randomized(org)
    if "feature" in filters:
        filters = filters | {"feature": features[filters["feature"]].pk}
    middle = FIRST + timedelta(days=DAYS // 2)
    for start, end in ((middle, LAST), (LAST, LAST), (FIRST, FIRST + timedelta(days=2))):
        with CaptureQueriesContext(connection) as captured:
            answer = queries.usage_summary.uncached(org, start, end, filters=dict(filters))
        got = {k: (answer[k]["value"], answer[k]["previous"]) for k in _summary_expected(org, start, end, filters)}
        assert got == _summary_expected(org, start, end, filters), (filters, start, end)
        # The dimension rollup and the bitmasks (per user, or per user and feature) answer: no
        # raw events and no per-user day rows.
        sqls = [q["sql"] for q in captured.captured_queries]
        assert not any("telemetry_usageevent" in sql for sql in sqls)
        assert not any("analytics_dailyuser" in sql for sql in sqls)
        assert len(captured.captured_queries) == 4


def test_summary_under_a_user_property_falls_back_where_the_rollup_folded_it(org):
    """A value folded into "other" on a day, or a day rolled up before the rollup counted
    sessions: the per-user rows answer, with the same figures."""
    features = _randomized(org)
    filters = {"user_properties": {"plan": "pro"}, "feature": features[0].pk}
    want = _summary_expected(org, FIRST, LAST, filters)
    DailyDimensionUsage.objects.filter(dimension="user.plan", date=LAST).update(sessions=None)
    with CaptureQueriesContext(connection) as captured:
        answer = queries.usage_summary.uncached(org, FIRST, LAST, filters=dict(filters))
    assert {k: (answer[k]["value"], answer[k]["previous"]) for k in want} == want
    assert "analytics_dailyuser" in " ".join(q["sql"] for q in captured.captured_queries)
