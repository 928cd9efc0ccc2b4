"""The funnel query equals a funnel counted in plain Python from raw events, on randomized
data built to hit the edges: several events per user and step, timestamps on a coarse grid
(ties between steps, events exactly at the window's end), steps repeated, event-type steps,
anonymous events, events outside the range, and every person filter."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from analytics import queries
from analytics.queries.filters import AGE_BANDS
from telemetry.models import EndUser, Feature, UsageEvent

from .factories import end_user, feature

pytestmark = pytest.mark.django_db

START, END = date(2025, 3, 2), date(2025, 3, 5)
FEATURES = ("search", "cart", "buy")
EVENT_TYPES = ("interaction", "view", "purchase")


def reference_funnel(org, steps: list[str], window_days: int, start: date, end: date, filters: dict) -> list[int]:
    """DESIGN's funnel, event by event: a user enters at their first step-1 event in
    start..end; each later step is their first matching event strictly after the previous
    step's and at most `window_days` after entering."""
    keys = set(Feature.objects.filter(organization=org).values_list("key", flat=True))
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = lo + timedelta(days=(end - start).days + 1)
    people = {u.pk: u for u in EndUser.objects.filter(organization=org)}
    by_user: dict[int, list[tuple[datetime, str, str]]] = {}
    for e in UsageEvent.objects.filter(organization=org, end_user__isnull=False).select_related("feature"):
        if keeps(people[e.end_user_id], filters):
            by_user.setdefault(e.end_user_id, []).append((e.timestamp, e.feature.key, e.event_type))

    def matches(step: str, key: str, event_type: str) -> bool:
        return key == step if step in keys else event_type == step

    counts = [0] * len(steps)
    for events in by_user.values():
        entries = [ts for ts, key, kind in events if lo <= ts < hi and matches(steps[0], key, kind)]
        if not entries:
            continue
        t0 = t = min(entries)
        counts[0] += 1
        deadline = t0 + timedelta(days=window_days)
        for i, step in enumerate(steps[1:], start=1):
            later = [ts for ts, key, kind in events if t < ts <= deadline and matches(step, key, kind)]
            if not later:
                break
            t = min(later)
            counts[i] += 1
    return counts


def keeps(person: EndUser, filters: dict[str, Any]) -> bool:
    if age := filters.get("age"):
        bounds = AGE_BANDS[age]
        if person.age is None:
            return False
        checks = {"lt": person.age < bounds.get("lt", 0), "gte": person.age >= bounds.get("gte", 0)}
        checks |= {"lte": person.age <= bounds.get("lte", 0), "gt": person.age > bounds.get("gt", 0)}
        if not all(checks[op] for op in bounds):
            return False
    if (gender := filters.get("gender")) and person.gender != gender:
        return False
    return all(str(person.properties.get(k)) == v for k, v in (filters.get("user_properties") or {}).items())


@pytest.fixture
def random_events(org):
    """60 users, ~1,500 events from 2025-02-28 to 2025-03-09 on a 6-hour grid (ties and
    window-edge hits on purpose), a tenth of them anonymous."""
    rng = random.Random(14)
    features = {key: feature(org, key) for key in FEATURES}
    users = [
        end_user(
            org,
            f"r{i}",
            age=rng.choice([None, 12, 25, 39, 41, 70]),
            gender=rng.choice(["", "F", "M", "O"]),
            properties={"plan": rng.choice(["pro", "free"])},
        )
        for i in range(60)
    ]
    base = datetime(2025, 2, 28, tzinfo=UTC)
    rows = []
    for _ in range(1500):
        rows.append(
            UsageEvent(
                uuid=uuid.uuid4(),
                organization=org,
                feature=features[rng.choice(FEATURES)],
                end_user=None if rng.random() < 0.1 else rng.choice(users),
                event_type=rng.choice(EVENT_TYPES),
                timestamp=base + timedelta(hours=6 * rng.randrange(40)),
            )
        )
    UsageEvent.objects.bulk_create(rows)
    return features


CASES = [
    (["search", "cart", "buy"], 1, {}),
    (["search", "cart", "buy"], 3, {}),
    (["search", "search", "search"], 2, {}),
    (["search", "purchase", "buy"], 2, {}),
    (["view", "search", "purchase", "cart"], 4, {}),
    (["cart", "buy"], 1, {"gender": "F"}),
    (["search", "cart", "buy"], 2, {"age": "18-40"}),
    (["search", "view", "buy"], 3, {"age": ">40", "gender": "M"}),
    (["buy", "cart", "search"], 2, {"user_properties": {"plan": "pro"}}),
    (["search", "nobody-does-this", "cart"], 7, {}),
]


@pytest.mark.parametrize(("steps", "window_days", "filters"), CASES)
def test_funnel_equals_the_raw_event_reference(org, random_events, steps, window_days, filters):
    expected = reference_funnel(org, steps, window_days, START, END, filters)
    got = queries.funnel(org, steps=steps, window_days=window_days, start=START, end=END, filters=filters)
    assert [s["users"] for s in got["steps"]] == expected
    assert expected[0] > 0 and (len(set(expected)) > 1 or "nobody-does-this" in steps)


def test_window_end_keeps_fractions_of_a_second(org):
    """Entries with fractions of a second (SDK timestamps carry milliseconds): a later step
    0.2 s before, or exactly at, the window's end counts, 1 ms past it does not. SQLite's
    datetime() dropped the entry's fraction from the window's end, so all three missed."""
    search, cart = feature(org, "search"), feature(org, "cart")
    entry = datetime(2025, 3, 2, 10, 0, 0, 500_000, tzinfo=UTC)
    window_end = entry + timedelta(days=1)
    late_entry = datetime(2025, 3, 2, 23, 59, 59, 999_000, tzinfo=UTC)
    shifts = [(entry, window_end - timedelta(milliseconds=200)), (entry, window_end)]
    shifts += [(entry, window_end + timedelta(milliseconds=1)), (late_entry, late_entry + timedelta(days=1))]
    for i, (first, then) in enumerate(shifts):
        person = end_user(org, f"p{i}")
        for feat, when in ((search, first), (cart, then)):
            UsageEvent.objects.create(
                uuid=uuid.uuid4(), organization=org, feature=feat, end_user=person, timestamp=when
            )
    got = queries.funnel(org, steps=["search", "cart"], window_days=1, start=START, end=END)
    assert [s["users"] for s in got["steps"]] == [4, 3]
    assert reference_funnel(org, ["search", "cart"], 1, START, END, {}) == [4, 3]
