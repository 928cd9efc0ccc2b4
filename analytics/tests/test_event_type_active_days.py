"""The per-event-type active-day bitmasks (UserEventTypeActiveDays): kept exact by the rollup
(late and vanished events, anonymous ones left out, the migration's fill), and the users per
event type read from them (the breakdown's totals, "other", weekly series) equal to the raw
events over random ranges crossing blocks, under the person, account and user-property
filters; a feature filter, which the rows cannot apply, still answers from the raw events."""

import random
import uuid
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.active_days import block_of, day_bit
from analytics.models import UserEventTypeActiveDays
from analytics.queries.breakdowns import breakdown_series, breakdown_totals
from analytics.queries.breakdowns.sources import BREAKDOWN_LIMIT, NONE, OTHER
from analytics.queries.common import week_monday
from telemetry.models import Account, EndUser, UsageEvent

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, end_user, event, feature, migration_fill_run

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)  # mid-block: ranges ending here cut their last block
# More types than a breakdown shows, a few of them rare: "other" has users to count.
TYPES = [f"type-{i:02d}" for i in range(BREAKDOWN_LIMIT + 3)]


def bitmasks(org):
    rows = UserEventTypeActiveDays.objects.filter(organization=org).values_list(
        "end_user_id", "event_type", "block_start", "active_days"
    )
    return {(uid, kind, block): bits for uid, kind, block, bits in rows}


def bits_from_events(org, *, until=None):
    """{(end user, event type, block): bits} as the raw events of rolled days say they should be."""
    expected: dict[tuple[int, str, date], int] = defaultdict(int)
    for row in ref.load(org):
        if row.user is not None and (until is None or row.day <= until):
            expected[(row.user, row.event_type, block_of(row.day))] |= day_bit(row.day)
    return dict(expected)


@pytest.fixture(scope="module")
def data(module_org, django_db_blocker):
    """Built and rolled up once for the module (its tests that change it do so inside their
    own transaction, rolled back after them)."""
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_build(module_org)}


def _build(org):
    """110 days (three blocks) of 35 users (ages, genders, accounts, a plan) sending events of
    TYPES (skewed: the first few common, the last rare) and some anonymous ones."""
    rng = random.Random(91)
    first = LAST - timedelta(days=109)
    features = [feature(org, key) for key in ("search", "export", "share")]
    accounts = [Account.objects.create(organization=org, external_id=f"acct-{i}") for i in range(3)]
    people = [
        end_user(
            org,
            f"e{i:02d}",
            age=rng.choice([None, 15, 30, 52]),
            gender=rng.choice(["", "F", "M"]),
            account=rng.choice([*accounts, None]),
            properties={"plan": rng.choice(["free", "pro"])},
            first_seen=at(str(first)),
        )
        for i in range(35)
    ]
    weights = [2 ** -(i / 2) for i in range(len(TYPES))]
    rows = []
    for _ in range(1300):
        day = first + timedelta(days=rng.randrange(110))
        rows.append(
            UsageEvent(
                uuid=uuid.uuid4(),
                organization=org,
                feature=rng.choice(features),
                end_user=rng.choice(people + [None] * 4),
                event_type=rng.choices(TYPES, weights)[0],
                timestamp=at(str(day), f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00"),
            )
        )
    # An empty type (stored by older clients) and one sent as "(none)": one value, "(none)",
    # on every path; some users have both.
    for person in people[:6]:
        for kind in ("", "(none)") if person.pk % 2 else ("",):
            day = first + timedelta(days=rng.randrange(110))
            rows.append(
                UsageEvent(
                    uuid=uuid.uuid4(),
                    organization=org,
                    feature=features[0],
                    end_user=person,
                    event_type=kind,
                    timestamp=at(str(day), "10:00:00"),
                )
            )
    UsageEvent.objects.bulk_create(rows)
    rollup.rollup_range(first, LAST, org)
    return {"first": first, "features": features, "accounts": accounts}


def _expected_users(org, start, end, filters):
    """{event type: distinct users} and {(week, event type): distinct users} from raw events."""
    rows = [r for r in ref.matching(ref.load(org), filters) if r.user is not None and start <= r.day <= end]
    plan = (filters.get("user_properties") or {}).get("plan")
    if plan:
        having = set(EndUser.objects.filter(organization=org, properties__plan=plan).values_list("pk", flat=True))
        rows = [r for r in rows if r.user in having]
    per_type: dict[str, set[int]] = defaultdict(set)
    per_week: dict[tuple[date, str], set[int]] = defaultdict(set)
    for r in rows:
        key = r.event_type or NONE
        per_type[key].add(r.user)
        per_week[(max(week_monday(r.day), start), key)].add(r.user)
    return per_type, per_week


def _expected_totals(per_type):
    order = sorted(per_type, key=lambda kind: (-len(per_type[kind]), kind))
    top, rest = order[:BREAKDOWN_LIMIT], order[BREAKDOWN_LIMIT:]
    result = [{"key": kind, "value": len(per_type[kind])} for kind in top]
    if rest:
        result.append({"key": OTHER, "value": len(set().union(*(per_type[kind] for kind in rest)))})
    return result


def test_rollup_keeps_event_type_bitmasks_equal_to_the_events(data):
    org = data["org"]
    assert bitmasks(org) == bits_from_events(org)
    assert len({block for _, _, block in bitmasks(org)}) == 3
    # No row for anonymous events, none left empty.
    assert not UserEventTypeActiveDays.objects.filter(organization=org, active_days=0).exists()


def test_late_and_vanished_events_are_re_rolled(data):
    org = data["org"]
    day = LAST - timedelta(days=60)
    gone = UsageEvent.objects.filter(organization=org, end_user__isnull=False, timestamp__date=day)
    victim = gone.first()
    # Every event of that user and type that day vanishes; a late one of a new type arrives.
    UsageEvent.objects.filter(
        organization=org, end_user=victim.end_user, event_type=victim.event_type, timestamp__date=day
    ).delete()
    event(org, data["features"][0], victim.end_user, at(str(day), "23:59:59"), event_type="late-type")
    rollup.rollup_day(day, org)
    assert bitmasks(org) == bits_from_events(org)
    assert (victim.end_user_id, "late-type", block_of(day)) in bitmasks(org)
    assert not UserEventTypeActiveDays.objects.filter(organization=org, active_days=0).exists()
    rollup.rollup_day(day, org)
    assert bitmasks(org) == bits_from_events(org)
    # A pair whose one day in its block vanishes leaves no row behind.
    once = event(org, data["features"][0], victim.end_user, at(str(day), "08:00:00"), event_type="once")
    rollup.rollup_day(day, org)
    assert UserEventTypeActiveDays.objects.filter(end_user=victim.end_user, event_type="once").count() == 1
    once.delete()
    rollup.rollup_day(day, org)
    assert not UserEventTypeActiveDays.objects.filter(end_user=victim.end_user, event_type="once").exists()
    assert bitmasks(org) == bits_from_events(org)


def test_the_migration_fills_the_rolled_days_only(data):
    org = data["org"]
    rolled = bitmasks(org)
    # A day not rolled up yet: its events wait for the rollup, as every other rollup's do.
    event(org, data["features"][0], end_user(org, "newcomer"), at(str(LAST + timedelta(days=1))), event_type="x")
    UserEventTypeActiveDays.objects.all().delete()
    migration_fill_run("0015_event_type_active_days")
    assert bitmasks(org) == rolled == bits_from_events(org, until=LAST)


def _filter_sets(data):
    account = data["accounts"][0]
    return [
        {},
        {"age": "18-40"},
        {"gender": "F"},
        {"age": ">40", "gender": "M"},
        {"account": account},
        {"account": account.pk, "gender": "F"},
        {"user_properties": {"plan": "pro"}},
        {"feature": data["features"][1]},
    ]


def _weekly_by_type(org, start, end, filters):
    return breakdown_series(
        org, dimension="event_type", start=start, end=end, interval="week", metric="active_users", filters=filters
    )


def test_users_per_event_type_equal_the_raw_events(data):
    org = data["org"]
    rng = random.Random(5)
    ranges = [(LAST - timedelta(days=6), LAST), (LAST - timedelta(days=89), LAST), (data["first"], LAST)]
    for _ in range(6):
        start = data["first"] + timedelta(days=rng.randrange(100))
        ranges.append((start, min(LAST, start + timedelta(days=rng.randrange(1, 70)))))
    for start, end in ranges:
        for filters in _filter_sets(data):
            per_type, per_week = _expected_users(org, start, end, filters)
            totals = breakdown_totals(
                org, dimension="event_type", start=start, end=end, metric="active_users", filters=filters
            )
            assert totals == _expected_totals(per_type), (start, end, filters)
            weekly = _weekly_by_type(org, start, end, filters)
            top = [row["key"] for row in totals if row["key"] != OTHER]
            rest_users = set().union(*(users for kind, users in per_type.items() if kind not in top))
            assert [s["key"] for s in weekly] == top + ([OTHER] if rest_users else []), (start, end, filters)
            for series in weekly:
                for point in series["points"]:
                    kinds = [series["key"]] if series["key"] != OTHER else [k for k in per_type if k not in top]
                    users = set().union(*(per_week.get((point["date"], k), set()) for k in kinds))
                    assert point["value"] == len(users), (start, end, filters, series["key"], point)


def test_users_per_event_type_read_no_raw_events(data):
    """Under no filter, a person, a user-property and an account filter."""
    org = data["org"]
    start, end = LAST - timedelta(days=89), LAST
    filter_sets = [{}, {"gender": "F"}, {"user_properties": {"plan": "pro"}}, {"account": data["accounts"][0]}]
    for filters in filter_sets:
        with CaptureQueriesContext(connection) as queries:
            breakdown_totals(org, dimension="event_type", start=start, end=end, metric="active_users", filters=filters)
            _weekly_by_type(org, start, end, filters)
        assert queries.captured_queries, filters
        assert not [q for q in queries.captured_queries if "telemetry_usageevent" in q["sql"]], filters
