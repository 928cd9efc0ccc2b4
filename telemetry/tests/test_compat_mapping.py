"""The PostHog and Segment mappings on their own (no database): which message becomes an
event, a person update or an account, with which fields, and the clock-skew rule."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.exceptions import DomainError
from telemetry.compat.mapping import MESSAGE_ID_NAMESPACE, event_time, message_uuid, person_fields
from telemetry.compat.posthog import posthog_batch
from telemetry.compat.segment import segment_batch

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


# --- clock skew -----------------------------------------------------------------------------


def test_event_time_moves_the_timestamp_by_the_senders_clock_skew():
    # The sender's clock is 10 minutes fast: its event 2 s before sending happened 2 s before now.
    sent_at = NOW + timedelta(minutes=10)
    stamp = (sent_at - timedelta(seconds=2)).isoformat()
    assert event_time(stamp, sent_at, NOW) == (NOW - timedelta(seconds=2))


def test_event_time_without_sent_at_or_unparseable_goes_through_for_the_native_pass():
    assert event_time("2026-11-01T00:00:00Z", None, NOW) == "2026-11-01T00:00:00Z"
    assert event_time("yesterday", NOW, NOW) == "yesterday"
    assert event_time([1], NOW, NOW) == [1]
    assert event_time(None, NOW, NOW) is None


def test_event_time_offset_stands_for_a_missing_timestamp():
    assert event_time(None, None, NOW, offset=1500) == (NOW - timedelta(milliseconds=1500))
    assert event_time(None, None, NOW, offset="soon") is None


def test_event_time_out_of_range_goes_through_instead_of_raising():
    assert event_time("0001-01-01T00:00:00+00:00", NOW + timedelta(days=1), NOW) == "0001-01-01T00:00:00+00:00"


# --- message ids, traits ------------------------------------------------------------------


def test_message_ids_become_stable_uuid5s():
    assert message_uuid("m-1") == message_uuid("m-1") == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "m-1"))
    assert message_uuid("m-1") != message_uuid("m-2")
    assert message_uuid(7) == message_uuid("7")
    for message_id in ("ä-unicode-\U0001f600", "x" * 1000):
        assert message_uuid(message_id) == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, message_id))
    assert message_uuid(None) is None and message_uuid("") is None and message_uuid({"a": 1}) is None


def test_message_ids_that_are_uuids_are_the_event_uuid():
    # What Segment's, RudderStack's and PostHog's SDKs send: a uuid4 per message, used as it is
    # (the validation pass lower-cases it), so a retry still has the same uuid.
    message_id = str(uuid.uuid4()).upper()
    assert message_uuid(message_id) == message_id
    # Other spellings of a UUID are ids like any other: hashed, the same every time.
    braced = "{" + message_id + "}"
    assert message_uuid(braced) == str(uuid.uuid5(MESSAGE_ID_NAMESPACE, braced))


def test_traits_split_into_end_user_fields_and_properties():
    assert person_fields({"email": "a@b.co", "age": "31", "gender": "female", "plan": "pro"}) == {
        "email": "a@b.co",
        "age": 31,
        "gender": "female",
        "properties": {"plan": "pro"},
    }
    assert person_fields({"$email": "x@y.io"}) == {"email": "x@y.io"}
    assert person_fields({"email": "", "age": None}) == {}
    assert person_fields(None) == {}
    assert person_fields("not traits") == {"properties": "not traits"}


# --- PostHog ------------------------------------------------------------------------------


def test_posthog_batch_maps_events_with_skew_session_and_metadata():
    sent = NOW + timedelta(hours=1)
    batch = posthog_batch(
        {
            "api_key": "upk_x",
            "sent_at": sent.isoformat(),
            "batch": [
                {
                    "event": "export",
                    "distinct_id": "u1",
                    "uuid": "0b5f4c64-6f5e-4d43-9a3e-8f1a2b3c4d5e",
                    "timestamp": (sent - timedelta(seconds=30)).isoformat(),
                    "properties": {"$session_id": "s1", "format": "csv", "token": "upk_x", "$lib": "posthog-python"},
                },
                {"event": "$pageview", "properties": {"distinct_id": "u2", "$current_url": "/docs"}},
            ],
        },
        now=NOW,
    )
    assert batch.count == 2 and batch.errors == [] and batch.event_index == [0, 1]
    first, second = batch.events
    assert first == {
        "uuid": "0b5f4c64-6f5e-4d43-9a3e-8f1a2b3c4d5e",
        "feature": "export",
        "user_id": "u1",
        "event_type": "capture",
        "session_id": "s1",
        "timestamp": (NOW - timedelta(seconds=30)),
        "metadata": {"format": "csv", "$lib": "posthog-python"},
        "account_id": None,
    }
    assert second["user_id"] == "u2" and second["event_type"] == "page" and second["timestamp"] is None


def test_posthog_person_events_are_updates_not_usage_events():
    batch = posthog_batch(
        [
            {"event": "$set", "distinct_id": "u1", "$set": {"email": "a@b.co", "plan": "pro"}},
            {"event": "$set_once", "distinct_id": "u1", "$set_once": {"age": 40, "source": "ad"}},
            {
                "event": "$identify",
                "distinct_id": "u1",
                "properties": {"$anon_distinct_id": "anon", "$set": {"gender": "F"}},
            },
            {"event": "$create_alias", "distinct_id": "u1", "properties": {"alias": "u0"}},
            {"event": "search", "distinct_id": "u1", "properties": {"$set": {"plan": "team"}}},
        ],
        now=NOW,
    )
    assert batch.event_index == [4] and batch.events[0]["feature"] == "search"
    by_index = {person["index"]: person for person in batch.people}
    assert by_index[0]["email"] == "a@b.co" and by_index[0]["properties"] == {"plan": "pro"}
    assert by_index[1]["once"] == {"age": 40, "properties": {"source": "ad"}}
    assert by_index[2]["gender"] == "F"
    assert by_index[3] == {"index": 3, "user_id": "u1", "timestamp": None, "once": {}}
    assert by_index[4]["properties"] == {"plan": "team"}
    assert all(person["user_id"] == "u1" for person in batch.people)


def test_posthog_groups_set_the_account_and_groupidentify_names_it():
    batch = posthog_batch(
        [
            {"event": "search", "distinct_id": "u1", "properties": {"$groups": {"team": "t1", "company": "acme"}}},
            {"event": "search", "distinct_id": "u2", "properties": {"$groups": {"team": "t9"}}},
            {
                "event": "$groupidentify",
                "distinct_id": "random-uuid",
                "properties": {
                    "$group_type": "company",
                    "$group_key": "acme",
                    "$group_set": {"name": "Acme", "seats": 5},
                },
            },
        ],
        now=NOW,
    )
    assert [event["account_id"] for event in batch.events] == ["acme", "t9"]
    assert batch.accounts == [
        {
            "index": 2,
            "account_id": "acme",
            "timestamp": None,
            "name": "Acme",
            "properties": {"name": "Acme", "seats": 5},
        }
    ]
    # The group call of a server SDK names no person: no end user is made for its random id.
    assert batch.people == []


def test_posthog_personless_events_have_no_end_user():
    batch = posthog_batch(
        {"batch": [{"event": "cron", "distinct_id": "x", "properties": {"$process_person_profile": False}}]}, now=NOW
    )
    assert batch.events[0]["user_id"] is None and batch.people == []


def test_posthog_bad_messages_are_item_errors():
    batch = posthog_batch(
        [{"event": ""}, "text", {"event": "e", "properties": 5, "distinct_id": "u"}, {"event": "e"}], now=NOW
    )
    assert [(e["index"], e["field"]) for e in batch.errors] == [
        (0, "event"),
        (1, "non_field_errors"),
        (2, "properties"),
        (3, "distinct_id"),
    ]
    assert batch.events == []


@pytest.mark.parametrize("payload", [5, "x", None, {"no": "events"}, {"batch": "x"}, {"batch": []}])
def test_posthog_bodies_of_the_wrong_shape_are_refused(payload):
    with pytest.raises(DomainError):
        posthog_batch(payload, now=NOW)


def test_posthog_js_sent_at_comes_from_the_query_in_milliseconds():
    sent = NOW + timedelta(minutes=5)
    batch = posthog_batch(
        [{"event": "e", "distinct_id": "u", "timestamp": sent.isoformat()}],
        now=NOW,
        sent_at_ms=str(int(sent.timestamp() * 1000)),
    )
    assert batch.events[0]["timestamp"] == (NOW)


# --- Segment ------------------------------------------------------------------------------


def test_segment_batch_maps_track_page_screen_with_message_id_uuids():
    sent = NOW - timedelta(minutes=3)  # the sender's clock is slow
    batch = segment_batch(
        {
            "sentAt": sent.isoformat(),
            "batch": [
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": "u1",
                    "messageId": "m-1",
                    "timestamp": (sent - timedelta(seconds=5)).isoformat(),
                    "properties": {"total": 3},
                    "context": {"library": {"name": "analytics-python"}, "groupId": "acme"},
                },
                {"type": "page", "name": "Pricing", "anonymousId": "a1", "category": "Docs", "messageId": "m-2"},
                {"type": "screen", "userId": "u1", "properties": {"name": "Home"}},
                {"type": "page", "userId": "u1"},
            ],
        },
        now=NOW,
    )
    assert batch.errors == []
    track, page, screen, unnamed = batch.events
    assert track == {
        "uuid": message_uuid("m-1"),
        "feature": "Order Completed",
        "user_id": "u1",
        "event_type": "track",
        "session_id": None,
        "timestamp": (NOW - timedelta(seconds=5)),
        "metadata": {"total": 3, "context": {"library": {"name": "analytics-python"}}},
        "account_id": "acme",
    }
    assert (page["feature"], page["user_id"], page["event_type"], page["metadata"]) == (
        "Pricing",
        "a1",
        "page",
        {"category": "Docs"},
    )
    assert (screen["feature"], screen["event_type"], screen["uuid"]) == ("Home", "screen", None)
    assert unnamed["feature"] == "page"


def test_segment_metadata_keeps_the_context_fields_that_say_what_sent_the_event():
    context = {
        "library": {"name": "analytics.js", "version": "5.2.0"},
        "app": {"name": "Shop", "version": "3.1"},
        "os": {"name": "iOS", "version": "18.1"},
        "page": {"path": "/pricing", "url": "https://shop.example/pricing", "title": "Pricing"},
        "locale": "fr-FR",
        "timezone": "Europe/Paris",
        # Columns or the person's, not metadata:
        "sessionId": "s-1",
        "groupId": "acme",
        "traits": {"email": "a@b.co"},
        # Device data the platform does not keep:
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0 (iPhone)",
        "device": {"id": "d-1", "advertisingId": "ad-1", "model": "iPhone16,2"},
        "network": {"wifi": True},
        "screen": {"width": 390},
        "campaign": {"source": "newsletter"},
    }
    message = {"type": "track", "event": "Search", "userId": "u1", "properties": {"q": "x"}, "context": context}
    (event,) = segment_batch({"batch": [message]}, now=NOW).events
    assert event["metadata"] == {
        "q": "x",
        "context": {name: context[name] for name in ("library", "app", "os", "page", "locale", "timezone")},
    }
    assert (event["session_id"], event["account_id"]) == ("s-1", "acme")
    # A context with nothing kept adds nothing, and the message's own properties are not copied.
    properties = {"q": "y"}
    lone = {"type": "track", "event": "Search", "userId": "u1", "properties": properties, "context": {"ip": "x"}}
    (event,) = segment_batch({"batch": [lone]}, now=NOW).events
    assert event["metadata"] is properties


def test_segment_messages_of_the_same_time_share_its_skew_correction():
    sent = NOW + timedelta(hours=1)  # the sender's clock is an hour fast
    stamp = (sent - timedelta(seconds=30)).isoformat()
    messages = [
        {"type": "track", "event": "E", "userId": "u1", "timestamp": stamp},
        {"type": "track", "event": "E", "userId": "u2", "timestamp": stamp},
        # A message's own sentAt wins over the batch's.
        {"type": "track", "event": "E", "userId": "u3", "timestamp": stamp, "sentAt": stamp},
    ]
    first, second, own = segment_batch({"batch": messages, "sentAt": sent.isoformat()}, now=NOW).events
    assert first["timestamp"] == second["timestamp"] == NOW - timedelta(seconds=30)
    assert own["timestamp"] == NOW


def test_segment_identify_group_alias_are_person_and_account_updates():
    batch = segment_batch(
        {
            "batch": [
                {"type": "identify", "userId": "u1", "traits": {"email": "s@b.co", "age": 22, "plan": "pro"}},
                # RudderStack puts identify traits in the context.
                {"type": "identify", "userId": "u2", "context": {"traits": {"email": "r@b.co"}}},
                {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme", "seats": 5}},
                {"type": "alias", "userId": "u3", "previousId": "u0"},
            ]
        },
        now=NOW,
    )
    assert batch.events == []
    people = {(p["index"], p["user_id"]): p for p in batch.people}
    assert people[(0, "u1")]["email"] == "s@b.co" and people[(0, "u1")]["properties"] == {"plan": "pro"}
    assert people[(1, "u2")]["email"] == "r@b.co"
    assert people[(2, "u1")]["account_id"] == "acme"
    assert (3, "u3") in people
    assert batch.accounts == [
        {
            "index": 2,
            "account_id": "acme",
            "timestamp": None,
            "name": "Acme",
            "properties": {"name": "Acme", "seats": 5},
        }
    ]


def test_segment_single_call_routes_name_the_call():
    batch = segment_batch({"event": "Clicked", "userId": "u1", "type": "identify"}, now=NOW, call="track")
    assert batch.events[0]["event_type"] == "track"


def test_segment_bad_messages_are_item_errors():
    batch = segment_batch(
        {"batch": [{"type": "launch"}, {"type": "track", "event": "e"}, 5, {"type": "track", "userId": "u"}]},
        now=NOW,
    )
    assert [(e["index"], e["field"]) for e in batch.errors] == [
        (0, "type"),
        (1, "userId"),
        (2, "non_field_errors"),
        (3, "event"),
    ]


@pytest.mark.parametrize("payload, call", [([], None), ({"batch": {}}, None), ({}, None), ([1], "track"), (3, "page")])
def test_segment_bodies_of_the_wrong_shape_are_refused(payload, call):
    with pytest.raises(DomainError):
        segment_batch(payload, now=NOW, call=call)
