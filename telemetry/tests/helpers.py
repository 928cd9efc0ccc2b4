"""Shared helpers for the telemetry tests."""

import uuid
from datetime import UTC, datetime, timedelta

from telemetry.models import UsageEvent

TRACK = "/api/v1/events/track"
BATCH = "/api/v1/events/batch"


def event(**fields):
    body = {"feature": "search", "user_id": "u-1", "session_duration": 12.5}
    body.update(fields)
    return body


def events(n, **fields):
    return [event(uuid=str(uuid.uuid4()), user_id=f"u-{i % 50}", **fields) for i in range(n)]


def stored(org):
    return UsageEvent.objects.filter(organization=org).count()


def iso(delta=timedelta(0)):
    return (datetime.now(UTC) + delta).isoformat()


def post(client, path, body, **extra):
    return client.post(path, body, format="json", **extra)
