"""The real SDK clients (pinned in requirements-dev.txt) pointed at a live server: PostHog's
posthog-python, Segment's analytics-python and RudderStack's rudder-sdk-python work unchanged.

Each sends through its own HTTP stack to pytest-django's `live_server`, in sync mode or
with an explicit flush, and the test reads what the database holds."""

import uuid
from datetime import UTC, datetime
from unittest import mock

import pytest
from posthog import Posthog
from rudderstack.analytics import Client as RudderClient
from rudderstack.analytics.request import APIError as RudderAPIError
from segment.analytics import Client as SegmentClient

from core.exceptions import StorageUnavailable
from telemetry.compat import service
from telemetry.compat.mapping import message_uuid
from telemetry.models import Account, EndUser, UsageEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sdk_connections_closed")]

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


def test_posthog_person_updates_upsert_the_end_user_and_are_not_events(posthog, org):
    posthog.set(distinct_id="user-7", properties={"email": "ada@shop.example", "age": 36, "plan": "pro"})
    posthog.set_once(distinct_id="user-7", properties={"gender": "female", "referrer": "ad", "plan": "free"})
    # $set_once never overwrites: neither a value set before nor one set once before.
    posthog.set_once(distinct_id="user-7", properties={"email": "other@shop.example", "referrer": "mail"})
    person = EndUser.objects.get(organization=org, external_id="user-7")
    assert (person.email, person.age, person.gender) == ("ada@shop.example", 36, "F")
    assert person.properties == {"plan": "pro", "referrer": "ad"}
    assert UsageEvent.objects.filter(organization=org).count() == 0


def test_posthog_groups_set_the_end_users_account(posthog, org):
    posthog.group_identify("company", "acme", {"name": "Acme Inc", "seats": 40})
    posthog.capture("search", distinct_id="user-1", groups={"company": "acme"})
    account = Account.objects.get(organization=org, external_id="acme")
    assert (account.name, account.properties) == ("Acme Inc", {"name": "Acme Inc", "seats": 40})
    assert EndUser.objects.get(organization=org, external_id="user-1").account == account
    # The group call made no end user for the SDK's random distinct id, and no event.
    assert EndUser.objects.filter(organization=org).count() == 1
    assert UsageEvent.objects.filter(organization=org).count() == 1


def test_posthog_batch_sent_twice_stores_once(live_server, raw_api_key, org):
    from posthog.request import batch_post

    batch = [
        {"event": "search", "distinct_id": f"u{i}", "uuid": str(uuid.uuid4()), "timestamp": PAST.isoformat()}
        for i in range(5)
    ]
    first = batch_post(raw_api_key, live_server.url, gzip=True, batch=batch)
    second = batch_post(raw_api_key, live_server.url, gzip=True, batch=batch)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicates"] == 5 and {r["status"] for r in second.json()["results"]} == {"duplicate"}
    assert UsageEvent.objects.filter(organization=org).count() == 5


def _503_once_after_storing(calls):
    """The ingestion service stores the batch, then the answer is lost: the client sees a 503
    (as behind a proxy that timed out) and retries the same batch."""
    real = service.sdk_batch_ingest

    def ingest(org, batch):
        result = real(org, batch)
        calls.append(len(batch.events))
        if len(calls) == 1:
            raise StorageUnavailable(retry_after=0)
        return result

    return mock.patch.object(service, "sdk_batch_ingest", ingest)


def test_posthog_retry_after_a_503_stores_once(live_server, raw_api_key, org):
    client = Posthog(project_api_key=raw_api_key, host=live_server.url, max_retries=3, flush_at=10)
    calls = []
    with _503_once_after_storing(calls):
        for i in range(3):
            client.capture("search", distinct_id=f"u{i}")
        client.flush()
        client.shutdown()
    assert calls == [3, 3]
    assert UsageEvent.objects.filter(organization=org).count() == 3


# --- Segment --------------------------------------------------------------------------------


@pytest.fixture
def segment(live_server, raw_api_key):
    errors = []
    client = SegmentClient(
        write_key=raw_api_key, host=live_server.url, sync_mode=True, max_retries=0, on_error=_errors_raised(errors)
    )
    client.errors = errors
    yield client
    assert errors == []


def test_segment_calls_land_with_feature_user_type_time_and_traits(segment, org):
    segment.identify("user-9", {"email": "s@shop.example", "age": 22, "gender": "male", "plan": "team"})
    segment.group("user-9", "globex", {"name": "Globex", "industry": "energy"})
    segment.track("user-9", "Order Completed", {"total": 3}, timestamp=PAST, message_id="msg-1")
    segment.page("user-9", "Docs", "Pricing", {"url": "/pricing"})
    segment.screen("user-9", "App", "Home")
    rows = {row.feature.name: row for row in UsageEvent.objects.filter(organization=org).select_related("feature")}
    assert set(rows) == {"Order Completed", "Pricing", "Home"}
    order = rows["Order Completed"]
    assert order.event_type == "track" and order.metadata["total"] == 3
    assert order.metadata["context"]["library"]["name"] == "analytics-python"
    assert str(order.uuid) == message_uuid("msg-1") and _close_to(order.timestamp, PAST)
    assert (rows["Pricing"].event_type, rows["Pricing"].metadata["category"]) == ("page", "Docs")
    assert rows["Home"].event_type == "screen"
    person = EndUser.objects.select_related("account").get(organization=org, external_id="user-9")
    assert (person.email, person.age, person.gender, person.properties) == ("s@shop.example", 22, "M", {"plan": "team"})
    assert (person.account.external_id, person.account.name) == ("globex", "Globex")
    assert {row.end_user_id for row in rows.values()} == {person.pk}


def test_segment_retry_after_a_503_stores_once(live_server, raw_api_key, org):
    client = SegmentClient(write_key=raw_api_key, host=live_server.url, max_retries=3, upload_interval=0.1)
    calls = []
    with _503_once_after_storing(calls):
        client.track("u1", "Exported", message_id="m-1")
        client.track("u2", "Exported", message_id="m-2")
        client.shutdown()
    assert len(calls) >= 2 and calls[0] == calls[1]
    assert UsageEvent.objects.filter(organization=org).count() == 2


# --- RudderStack ----------------------------------------------------------------------------


@pytest.fixture
def rudder(live_server, raw_api_key):
    errors = []
    client = RudderClient(
        write_key=raw_api_key, host=live_server.url, sync_mode=True, max_retries=0, on_error=_errors_raised(errors)
    )
    client.errors = errors
    yield client


def test_rudder_gzipped_calls_land(rudder, org):
    assert rudder.gzip  # Rudder's default
    rudder.identify("user-3", {"email": "r@shop.example", "age": 50})
    rudder.track("user-3", "Clicked", {"button": "save"}, timestamp=PAST)
    rudder.group("user-3", "initech", {"name": "Initech"})
    assert rudder.errors == []
    row = _event(org, "clicked")
    assert row.end_user.external_id == "user-3" and row.event_type == "track" and _close_to(row.timestamp, PAST)
    person = EndUser.objects.select_related("account").get(organization=org, external_id="user-3")
    assert (person.email, person.age, person.account.name) == ("r@shop.example", 50, "Initech")


def test_rudder_reads_code_and_message_from_an_error(live_server, org):
    errors = []
    client = RudderClient(
        write_key="upk_" + "0" * 32,
        host=live_server.url,
        sync_mode=True,
        max_retries=0,
        on_error=_errors_raised(errors),
    )
    with pytest.raises(RudderAPIError) as caught:
        client.track("u", "Clicked")
    assert caught.value.status == 401
    assert caught.value.code == "unauthorized" and "API key" in caught.value.message
    assert UsageEvent.objects.count() == 0
