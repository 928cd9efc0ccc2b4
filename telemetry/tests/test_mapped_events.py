"""SDK events the mappings hand over as tuples (`services.ingest.mapped`) are judged exactly as
the native items they stand for: the same rows, errors, duplicates and end users, whatever
the values (generated, hostile ones included), repeated or not within the batch."""

from datetime import UTC, datetime, timedelta
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.compat.segment import segment_batch
from telemetry.services.ingest.context import EventContext
from telemetry.services.ingest.mapped import mapped_item, mapped_validate
from telemetry.services.ingest.validate import items_validate
from telemetry.tests.test_ingest_fuzz import json_values
from tenants.models import Organization, User

ORG = Organization(pk=7, slug="mapped", name="Mapped")
MEMBER = User(pk=9, email="member@mapped.example", role="member")
NOW = datetime.now(UTC)

# What the mappings put in each place (and a few values they could pass through unjudged).
uuids = st.none() | st.sampled_from(
    [
        "0b5f4c64-6f5e-4d43-9a3e-8f1a2b3c4d5e",
        "0B5F4C64-6F5E-4D43-9A3E-8F1A2B3C4D5E",
        "{0b5f4c64-6f5e-4d43-9a3e-8f1a2b3c4d5f}",
        "not-a-uuid",
    ]
)
features = st.sampled_from(["search", " search ", "export", "", "  ", "a\u200bb", "x" * 201, "nul\x00"]) | json_values
user_ids = st.sampled_from(["u1", " u1", "u2", "", " ", "x" * 201, "a\x00", 42]) | json_values
times = (
    st.sampled_from(
        [
            NOW - timedelta(seconds=5),
            NOW + timedelta(days=3),
            datetime(1960, 1, 1, tzinfo=UTC),
            datetime(2026, 1, 1, tzinfo=UTC),
            (NOW - timedelta(hours=1)).isoformat(),
            "yesterday",
            "0001-01-01T00:00:00+01:00",
        ]
    )
    | json_values
)
metadata = st.sampled_from([{}, {"a": 1}, {"context": {"library": {"name": "x"}}}, {"n": "\x00"}]) | json_values
events = st.tuples(
    st.integers(min_value=0, max_value=4),  # messages may share an index (person + event)
    uuids,
    features,
    user_ids,
    st.sampled_from(["track", "page", "capture", "", "x" * 65]) | json_values,
    st.none() | st.sampled_from(["s1", "x" * 129, "a\x00"]) | json_values,
    times,
    metadata,
    st.none() | st.sampled_from(["acme", "", 7]) | json_values,
)


def _both(ctx, mapped, **options):
    """Both passes over the same events; the uuids made for events sent without one come
    from the same bytes in both (they are random otherwise)."""
    with patch("telemetry.services.ingest.values.os.urandom", lambda n: bytes(range(256)) * (n // 256 + 1)):
        rows, check = items_validate(ctx, [mapped_item(event) for event in mapped], [event[0] for event in mapped])
        fast_rows, fast = mapped_validate(ctx, mapped, **options)
    return (rows, check), (fast_rows, fast)


@settings(max_examples=400, deadline=None)
@given(mapped=st.lists(events, min_size=1, max_size=8), member=st.booleans(), skew=st.booleans())
def test_mapped_events_are_judged_as_their_native_items(mapped, member, skew):
    ctx = EventContext(ORG, MEMBER if member else None, sent_at=NOW + timedelta(minutes=3) if skew else None)
    (rows, check), (fast_rows, fast) = _both(ctx, mapped)
    assert fast.errors == check.errors
    assert fast.duplicates == check.duplicates
    assert fast.users == check.users
    assert fast_rows == rows


def test_repeated_values_are_checked_once_and_judged_alike():
    stamp = (NOW - timedelta(minutes=1)).isoformat()
    mapped = [
        (i, None, feature, f"u{i % 2}", "track", "s", when, {"i": i}, None)
        for i, (feature, when) in enumerate(
            [("search", stamp), ("search", stamp), ("a\u200bb", "late"), ("a\u200bb", "late"), ("search", None)]
        )
    ]
    ctx = EventContext(ORG, None)
    (rows, check), (fast_rows, fast) = _both(ctx, mapped)
    assert fast.errors == check.errors and [e["index"] for e in fast.errors] == [2, 2, 3, 3]
    assert [row["_index"] for row in fast_rows] == [row["_index"] for row in rows] == [0, 1, 4]
    assert [row["timestamp"] for row in fast_rows] == [row["timestamp"] for row in rows]


# Segment messages as SDKs send them, and worse: the mapping's uuids are taken as they are by
# the pass (`uuids_canonical`), so they must be what the native pass would have made of them.
message_ids = st.none() | st.uuids().map(str) | st.uuids().map(lambda u: str(u).upper()) | json_values
segment_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "page", "screen"]), "messageId": message_ids},
    optional={
        "event": features,
        "userId": user_ids,
        "anonymousId": user_ids,
        "timestamp": times.map(lambda t: t.isoformat() if isinstance(t, datetime) else t),
        "properties": metadata,
        "context": st.sampled_from([{"library": {"name": "x"}, "sessionId": "s"}, {"groupId": "acme"}]) | json_values,
    },
)


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(segment_messages, min_size=1, max_size=8), repeat=st.booleans())
def test_segment_events_are_judged_as_their_native_items(messages, repeat):
    if repeat:  # a retry within the batch: the same message ids
        messages = messages + [dict(message) for message in messages]
    batch = segment_batch({"batch": messages, "sentAt": NOW.isoformat()}, now=NOW)
    assert batch.uuids_canonical
    ctx = EventContext(ORG, None)
    (rows, check), (fast_rows, fast) = _both(ctx, batch.mapped, uuids_canonical=True)
    assert (fast_rows, fast.errors, fast.duplicates, fast.users) == (rows, check.errors, check.duplicates, check.users)
