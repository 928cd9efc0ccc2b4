"""Hand-built telemetry rows for analytics tests (written straight through the ORM so every
expected figure can be worked out by hand)."""

import importlib
import random
import uuid
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from django.db import connection

from telemetry.models import EndUser, Feature, UsageEvent


def at(day: str, hms: str = "12:00:00") -> datetime:
    """'2025-03-01', '23:59:59' → an aware UTC datetime."""
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=UTC)


def random_events(org, rng, features, people, first: date, days: int, count: int, event_types=("interaction",)) -> None:
    """`count` events of `org` on the hour, each of a random feature, day of the `days` from
    `first`, one of `people` or anonymous (None) and one of `event_types`, bulk-written."""
    UsageEvent.objects.bulk_create(
        UsageEvent(
            uuid=uuid.uuid4(),
            organization=org,
            feature=rng.choice(features),
            end_user=rng.choice([*people, None]),
            # One type draws nothing: the other tests' random data stays as it was.
            event_type=rng.choice(event_types) if len(event_types) > 1 else event_types[0],
            timestamp=at(str(first + timedelta(days=rng.randrange(days))), f"{rng.randrange(24):02d}:00:00"),
        )
        for _ in range(count)
    )


def random_usage(org, first: date, days: int, seed: int = 15) -> list[Feature]:
    """Three features, 24 end users with random ages, genders and properties (`plan`,
    `tier`) and 500 events among them (a sixth anonymous) over `days` days from `first`,
    with random event types, sessions, session times and metadata (`source`, `n`),
    bulk-written. Returns the features."""
    rng = random.Random(seed)
    features = [feature(org, key) for key in ("search", "export", "share")]
    people = []
    for i in range(24):
        properties = {}
        if rng.random() < 0.8:
            properties["plan"] = rng.choice(["pro", "free", "team", ""])
        if rng.random() < 0.5:
            properties["tier"] = rng.choice([1, 2, 3])
        people.append(
            end_user(
                org,
                f"r{i:02d}",
                age=rng.choice([None, 12, 18, 30, 40, 41, 66]),
                gender=rng.choice(["", "F", "M", "O"]),
                properties=properties,
                first_seen=at(str(first), "00:00:00"),
            )
        )
    rows = []
    for _ in range(500):
        metadata = {}
        if rng.random() < 0.6:
            metadata["source"] = rng.choice(["email", "ads", "direct", ""])
        if rng.random() < 0.3:
            metadata["n"] = rng.choice([1, 2, 7])
        day = first + timedelta(days=rng.randrange(days))
        rows.append(
            UsageEvent(
                uuid=uuid.uuid4(),
                organization=org,
                feature=rng.choice(features),
                end_user=rng.choice(people + [None] * 4),
                event_type=rng.choice(["interaction", "view", "click", ""]),
                session_id=rng.choice(["", f"s{rng.randrange(30)}"]),
                session_duration=rng.choice([None, float(rng.randrange(300))]),
                metadata=metadata,
                timestamp=at(str(day), f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00"),
            )
        )
    UsageEvent.objects.bulk_create(rows)
    return features


def feature(org, key, name=None):
    return Feature.objects.create(organization=org, key=key, name=name or key.title())


def end_user(org, external_id, *, first_seen=None, **fields):
    return EndUser.objects.create(
        organization=org,
        external_id=external_id,
        email=fields.pop("email", f"{external_id}@customer.example"),
        first_seen=first_seen,
        last_seen=first_seen,
        **fields,
    )


def event(org, feat, user=None, when=None, *, session="", duration=None, event_type="interaction"):
    return UsageEvent.objects.create(
        uuid=uuid.uuid4(),
        organization=org,
        feature=feat,
        end_user=user,
        event_type=event_type,
        session_id=session,
        session_duration=duration,
        timestamp=when,
    )


def users_on_days(org, count, days: list[date]):
    """`count` end users, each with one "search" event at 09:00 on every one of `days`."""
    feat = feature(org, "search")
    people = [end_user(org, f"u{i}", first_seen=at(str(days[0]), "08:00:00")) for i in range(count)]
    for day in days:
        for person in people:
            event(org, feat, person, at(str(day), "09:00:00"))
    return people


def migration_fill_run(module: str) -> None:
    """Run the `fill` step of migration `analytics.migrations.<module>` against the test
    database, as `migrate` would (it only reads the schema editor's connection)."""
    migration = importlib.import_module(f"analytics.migrations.{module}")
    migration.fill(None, SimpleNamespace(connection=connection))


def random_ranges(first: date, last: date, longest: int, n: int, seed: int, fixed=()) -> list[tuple[date, date]]:
    """`fixed` and then random ranges of first..last, each of at most `longest` + 1 days, `n` in all."""
    rng = random.Random(seed)
    found = list(fixed)
    while len(found) < n:
        start = first + timedelta(days=rng.randrange((last - first).days + 1))
        end = start + timedelta(days=rng.randrange(longest + 1))
        if end <= last:
            found.append((start, end))
    return found
