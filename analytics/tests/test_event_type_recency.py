"""The per-event-type recency rows (DailyEventTypeRecency): distinct users per event type over
any range of up to RECENCY_DAYS + 1 days and per week, unfiltered, read from one row per type
and day, equal the raw events in the event-type breakdowns; each day's rows match its
per-event-type bitmasks; no bitmask row is read; filters, more types than a breakdown shows,
"" beside "(none)", stale days and longer ranges fall back to the bitmasks; a late event of a
new type on a day whose features did not change marks the later days."""

import math
import random
from collections import defaultdict
from contextlib import contextmanager
from datetime import date, timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.active_days import day_bit
from analytics.models import DailyEventTypeRecency, FeatureRecencyStale, UserEventTypeActiveDays
from analytics.queries import breakdown_series, breakdown_totals
from analytics.queries.breakdowns.sources import BREAKDOWN_LIMIT
from analytics.queries.common import week_monday
from analytics.recency import RECENCY_DAYS, recency_stale_rebuild
from telemetry.models import UsageEvent

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, end_user, feature, random_events, random_ranges

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)
FIRST = LAST - timedelta(days=129)
TYPES = ("interaction", "view", "purchase", "")


def _build(org):
    rng = random.Random(53)
    features = [feature(org, key) for key in ("search", "export")]
    people = [end_user(org, f"t{i:02d}", first_seen=at(str(FIRST))) for i in range(30)]
    random_events(org, rng, features, people, FIRST, 130, 900, event_types=TYPES)
    rollup.rollup_range(FIRST, LAST, org)
    return {"features": features, "people": people}


@pytest.fixture(scope="module")
def data(module_org, django_db_blocker):
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_build(module_org)}


def raw_types(org, start, end):
    """({type: distinct users within start..end}, {type: [users of each week]}), raw."""
    users, weeks = defaultdict(set), defaultdict(lambda: defaultdict(set))
    for row in ref.load(org):
        if row.user is not None and start <= row.day <= end:
            key = row.event_type or "(none)"
            users[key].add(row.user)
            weeks[key][week_monday(row.day)].add(row.user)
    mondays = [week_monday(start) + timedelta(days=7 * k) for k in range((end - week_monday(start)).days // 7 + 1)]
    ranked = sorted(((key, len(ids)) for key, ids in users.items()), key=lambda item: (-item[1], item[0]))
    return ranked, {key: [len(per_week[m]) for m in mondays] for key, per_week in weeks.items()}


def type_breakdowns(org, start, end, filters=None):
    totals = breakdown_totals.uncached(
        org, dimension="event_type", start=start, end=end, metric="active_users", filters=filters or {}
    )
    series = breakdown_series.uncached(
        org, dimension="event_type", start=start, end=end, interval="week", metric="active_users", filters=filters or {}
    )
    return [(row["key"], row["value"]) for row in totals], {
        line["key"]: [point["value"] for point in line["points"]] for line in series
    }


@contextmanager
def spied(module, name):
    """Record what `module.name` returns, calling it unchanged."""
    real, returned = getattr(module, name), []

    def spy(*args, **kwargs):
        returned.append(real(*args, **kwargs))
        return returned[-1]

    with mock.patch.object(module, name, spy):
        yield returned


def ranges(n, seed):
    fixed = [(FIRST, FIRST + timedelta(days=RECENCY_DAYS)), (LAST, LAST), (LAST - timedelta(days=29), LAST)]
    return random_ranges(FIRST, LAST, RECENCY_DAYS, n, seed, fixed)


def bitmask_reads(queries):
    return [q for q in queries.captured_queries if "usereventtypeactivedays" in q["sql"]]


def test_type_breakdowns_answer_every_range_as_the_raw_events_from_the_rows(data):
    org = data["org"]
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    for start, end in ranges(16, seed=5):
        with CaptureQueriesContext(connection) as queries:
            got = type_breakdowns(org, start, end)
        assert got == raw_types(org, start, end), (start, end)
        assert not bitmask_reads(queries), (start, end)


def test_each_days_rows_match_its_bitmasks(data):
    org = data["org"]
    rows = {
        (r.date, r.event_type): sum(r.gaps.values()) for r in DailyEventTypeRecency.objects.filter(organization=org)
    }
    expected: dict[tuple[date, str], int] = defaultdict(int)
    for block, event_type, days in UserEventTypeActiveDays.objects.filter(organization=org).values_list(
        "block_start", "event_type", "active_days"
    ):
        for offset in range(56):
            if days & day_bit(block + timedelta(days=offset)):
                expected[block + timedelta(days=offset), event_type] += 1
    assert rows == dict(expected)


def test_filters_more_types_and_stale_days_fall_back_to_the_bitmasks(data):
    org, search = data["org"], data["features"][0]
    start, end = LAST - timedelta(days=40), LAST
    # Filters the per-type rows do not carry: a feature (its dimension rollup), a person.
    for filters in ({"feature": search.pk}, {"gender": "F"}):
        with CaptureQueriesContext(connection) as queries:
            type_breakdowns(org, start, end, filters)
        assert not [q for q in queries.captured_queries if "dailyeventtyperecency" in q["sql"]], filters
    longer = (FIRST, FIRST + timedelta(days=RECENCY_DAYS + 1))
    with CaptureQueriesContext(connection) as queries:
        assert type_breakdowns(org, *longer) == raw_types(org, *longer)
    assert bitmask_reads(queries)
    FeatureRecencyStale.objects.create(organization=org, date=end - timedelta(days=3))
    with CaptureQueriesContext(connection) as queries:
        assert type_breakdowns(org, start, end) == raw_types(org, start, end)
    assert bitmask_reads(queries)
    assert recency_stale_rebuild(org.pk, budget_seconds=math.inf) == 1


def test_a_late_event_of_a_new_type_marks_the_later_days(data):
    """The user had the feature that day already: its per-feature bits do not move, the
    per-event-type bits do, and the later days' rows per type must follow."""
    org, search = data["org"], data["features"][0]
    day = LAST - timedelta(days=12)
    had = (
        UsageEvent.objects.filter(
            organization=org,
            feature=search,
            end_user__isnull=False,
            timestamp__gte=at(str(day)),
            timestamp__lt=at(str(day + timedelta(days=1))),
        )
        .exclude(event_type="purchase")
        .first()
    )
    assert had is not None
    UsageEvent.objects.create(
        organization=org,
        feature=search,
        end_user=had.end_user,
        event_type="purchase",
        timestamp=at(str(day), "23:30:00"),
    )
    with spied(rollup, "rollup_event_type_active_days") as returned:
        rollup.rollup_day(day, org)
        rollup.rollup_day(day, org)
    # The per-event-type step says its bits moved on the first re-roll, not on the second.
    assert returned == [True, False]
    assert FeatureRecencyStale.objects.filter(organization=org, date=day + timedelta(days=1)).exists()
    start, end = day - timedelta(days=5), day + timedelta(days=10)
    assert type_breakdowns(org, start, end) == raw_types(org, start, end)
    recency_stale_rebuild(org.pk, budget_seconds=math.inf)
    with CaptureQueriesContext(connection) as queries:
        assert type_breakdowns(org, start, end) == raw_types(org, start, end)
    assert not bitmask_reads(queries)


def test_more_types_than_shown_and_none_beside_empty_read_the_bitmasks(org):
    """ "other" is the users of several types, counted once; "" and a type sent as "(none)"
    are one value: the rows, one per stored type, answer neither."""
    day = LAST
    person = end_user(org, "p", first_seen=at(str(day)))
    search = feature(org, "search")
    for i in range(BREAKDOWN_LIMIT + 1):
        UsageEvent.objects.create(
            organization=org,
            feature=search,
            end_user=person,
            event_type=f"type-{i:02d}",
            timestamp=at(str(day), f"{i:02d}:00:00"),
        )
    rollup.rollup_day(day, org)
    with CaptureQueriesContext(connection) as queries:
        totals, _ = type_breakdowns(org, day, day)
    assert totals[-1] == ("other", 1) and bitmask_reads(queries)
    other = end_user(org, "q", first_seen=at(str(day)))
    UsageEvent.objects.filter(organization=org).delete()
    for event_type in ("", "(none)"):
        UsageEvent.objects.create(
            organization=org, feature=search, end_user=other, event_type=event_type, timestamp=at(str(day), "10:00:00")
        )
    rollup.rollup_day(day, org)
    recency_stale_rebuild(org.pk, budget_seconds=math.inf)
    assert type_breakdowns(org, day, day)[0] == [("(none)", 1)]
