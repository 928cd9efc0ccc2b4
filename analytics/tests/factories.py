"""Hand-built telemetry rows for analytics tests (written straight through the ORM so every
expected figure can be worked out by hand)."""

import uuid
from datetime import UTC, datetime

from telemetry.models import EndUser, Feature, UsageEvent


def at(day: str, hms: str = "12:00:00") -> datetime:
    """'2025-03-01', '23:59:59' → an aware UTC datetime."""
    return datetime.fromisoformat(f"{day}T{hms}").replace(tzinfo=UTC)


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
