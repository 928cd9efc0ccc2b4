"""The real SDK clients (pinned in requirements-dev.txt) pointed at a live server: PostHog's
posthog-python, Segment's analytics-python and RudderStack's rudder-sdk-python work unchanged.

Each sends through its own HTTP stack to pytest-django's `live_server`, in sync mode or
with an explicit flush, and the test reads what the database holds."""

import logging
import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
import rudderstack.analytics as rudder_module
from posthog import Posthog
from rudderstack.analytics import Client as RudderClient
from segment.analytics import Client as SegmentClient

from core.exceptions import StorageUnavailable
from telemetry.compat import service
from telemetry.models import Account, EndUser, UsageEvent

pytestmark = pytest.mark.django_db(transaction=True)

PAST = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _errors_raised(client_errors):
    """An `on_error` callback that collects what a Segment/Rudder client gave up on."""

    def on_error(exc, batch):
        client_errors.append(exc)

    return on_error


def _event(org, feature_key):
    return UsageEvent.objects.select_related("feature", "end_user").get(organization=org, feature__key=feature_key)


def _close_to(when, expected, seconds=5):
    return abs((when - expected).total_seconds()) < seconds


# --- PostHog --------------------------------------------------------------------------------


@pytest.fixture
def posthog(live_server, raw_api_key):
    client = Posthog(project_api_key=raw_api_key, host=live_server.url, sync_mode=True, max_retries=0)
    yield client
    client.shutdown()


def test_posthog_capture_lands_once_with_feature_user_session_time_and_properties(posthog, org):
    event_uuid = uuid.uuid4()
    posthog.capture(
        "report-export",
        distinct_id="user-42",
        properties={"$session_id": "sess-1", "format": "csv"},
        timestamp=PAST,
        uuid=event_uuid,
    )
    row = _event(org, "report-export")
    assert row.uuid == event_uuid
    assert row.end_user.external_id == "user-42"
    assert row.session_id == "sess-1" and row.event_type == "capture"
    assert row.metadata["format"] == "csv" and "$session_id" not in row.metadata
    assert "token" not in row.metadata and "api_key" not in row.metadata
    assert _close_to(row.timestamp, PAST)
    assert UsageEvent.objects.filter(organization=org).count() == 1
