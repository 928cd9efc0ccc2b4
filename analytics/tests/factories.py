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
