"""The value parsers of ingestion: uuids, timestamps, JSON objects and short texts, with the
limits and messages the per-field validators share."""

import math
import os
import re
import uuid as uuid_lib
from datetime import UTC, datetime, timedelta

import orjson

from core.parsers import MAX_JSON_DEPTH, json_depth

# The fields of a native event (telemetry.serializers.EventIn): any other is refused, naming
# it, rather than dropped unseen. Free-form data goes in `metadata`.
EVENT_FIELDS = frozenset(
    {
        "uuid",
        "feature_id",
        "feature",
        "user_id",
        "email",
        "age",
        "gender",
        "properties",
        "account_id",
        "event_type",
        "session_id",
        "session_duration",
        "timestamp",
        "metadata",
        "org_id",
    }
)

# PostgreSQL text and jsonb cannot hold NUL: refused up front for both databases, as an item
# error, instead of failing the whole insert. orjson writes NUL as \u0000; an escaped
# backslash before "u0000" is ordinary text.
NUL_MESSAGE = "Must not contain NUL (\\u0000) characters."
_JSON_NUL_RE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_EPOCH_MS_THRESHOLD = 100_000_000_000  # a number above this is milliseconds, not seconds
# Stand-ins for years 1 and 9999, where `astimezone` may leave datetime's range: they fail
# the range checks with the same messages as any other too early or too late time.
_TOO_EARLY = datetime.min.replace(tzinfo=UTC)
_TOO_LATE = datetime.max.replace(tzinfo=UTC)
# metadata/properties nesting past MAX_JSON_DEPTH is an item error: orjson (254 levels) and
# PostgreSQL have limits of their own, which used to fail a whole batch with a 500.
_TOO_DEEP = f"Must be nested at most {MAX_JSON_DEPTH} levels deep."

# The canonical form (what SDKs send): accepted as is, lower-cased. Other spellings that
# uuid.UUID accepts (no hyphens, braces, urn:uuid:) go through it and are normalised.
# fullmatch, not match with `$`: `$` also matches before a trailing newline.
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class FreshUUIDs:
    """Version-4 UUIDs for events sent without one, from one `os.urandom` call per request
    (uuid4() makes a syscall each), built only for the items that need one."""

    def __init__(self, n: int) -> None:
        self.raw = os.urandom(16 * n)

    def get(self, index: int) -> str:
        return str(uuid_lib.UUID(bytes=self.raw[16 * index : 16 * index + 16], version=4))


def uuid_normalise(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    if UUID_RE.fullmatch(value):
        return value.lower()
    try:
        return str(uuid_lib.UUID(value))
    except ValueError:
        return None


def _epoch_timestamp(value: float) -> datetime | None:
    """Epoch seconds or milliseconds → aware UTC datetime, else None."""
    if not math.isfinite(value):
        return None
    if abs(value) > _EPOCH_MS_THRESHOLD:
        value = value / 1000
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def timestamp_parse(value: object) -> datetime | None:
    """ISO 8601 string, epoch seconds/milliseconds or a datetime → aware UTC datetime, else None."""
    if isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return _epoch_timestamp(value)
    elif isinstance(value, datetime):  # from the SDK mappings (telemetry.compat), never from JSON
        ts = value
    else:
        return None
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    if ts.year == 1:
        return _TOO_EARLY
    if ts.year == 9999:
        return _TOO_LATE
    return ts.astimezone(UTC)


def skew_applied(ts: datetime, skew: timedelta) -> datetime:
    """`ts` moved by a sender's clock skew; out of datetime's range it is year 1 or 9999,
    which the range checks refuse like any other time too early or too late."""
    try:
        return ts + skew
    except OverflowError:
        return _TOO_EARLY if skew < timedelta(0) else _TOO_LATE


def json_object_dump(value: object, limit: int) -> tuple[str, None] | tuple[None, str]:
    """(serialised JSON, None) or (None, error message) for a metadata/properties object."""
    if value is None:
        return "{}", None
    if not isinstance(value, dict):
        return None, "Must be a JSON object."
    if not value:
        return "{}", None
    try:
        dumped = orjson.dumps(value)
    except orjson.JSONEncodeError:
        # Nesting past orjson's 254 levels is all a parsed body can fail on.
        return None, _TOO_DEEP
    if len(dumped) > limit:
        return None, f"Must be at most {limit // 1024} KB of JSON (got {len(dumped):,} bytes)."
    # Deeper than MAX_JSON_DEPTH takes more than that many bracket pairs, so short JSON (the
    # common case) is not looked at, longer JSON has its brackets counted in C, and only one
    # with more brackets than the limit is walked.
    if (
        len(dumped) > 2 * MAX_JSON_DEPTH
        and dumped.count(b"{") + dumped.count(b"[") > MAX_JSON_DEPTH
        and json_depth(value) > MAX_JSON_DEPTH
    ):
        return None, _TOO_DEEP
    if b"\\u0000" in dumped and _JSON_NUL_RE.search(dumped):
        return None, NUL_MESSAGE
    return dumped.decode(), None


def text_error(value: object, limit: int) -> str | None:
    """Why `value` is not an acceptable short text field, or None."""
    if not isinstance(value, str) or len(value) > limit:
        return f"Must be a string of at most {limit} characters."
    if "\x00" in value:
        return NUL_MESSAGE
    return None
