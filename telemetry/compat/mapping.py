"""What the PostHog and Segment mappings share: the shape they produce, the clock-skew rule,
message ids as uuids, traits split into end-user fields, and the account of `$groups`.

A mapping turns one request's messages into native event items (validated afterwards by
`services.ingest` in its one pass, as `/api/v1/events/batch` items are), person updates and
account updates. Every message keeps its position (`index`) in the request, so errors and
results name the message the SDK sent.
"""

import hashlib
import math
import uuid as uuid_lib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from rest_framework import status

from core.exceptions import DomainError

from ..services.ingest.mapped import MappedEvent, mapped_item
from ..services.ingest.values import UUID_RE, timestamp_parse

# Message ids (Segment's `messageId`) that are not UUIDs become event uuids in this namespace:
# the same message sent twice (a retry) has the same uuid, so it is stored once.
MESSAGE_ID_NAMESPACE = uuid_lib.UUID("6f1d3c52-43a5-5c1e-9a44-7b7d0d2f5a10")
_NAMESPACE_BYTES = MESSAGE_ID_NAMESPACE.bytes
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


@dataclass
class SdkBatch:
    """One request's messages, mapped. `mapped` holds its events as the ingestion pass takes
    them (`services.ingest.mapped`: each a tuple that starts with its message's index);
    people and accounts carry their message's `index`."""

    count: int
    mapped: list[MappedEvent] = field(default_factory=list)
    # Every uuid of `mapped` is None or a canonical lower-case UUID (Segment's: checked by
    # the mapping), which the pass then takes as it is (`mapped_validate`).
    uuids_canonical: bool = False
    people: list = field(default_factory=list)
    accounts: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    @property
    def events(self) -> list[dict]:
        """The events as native items (what each stands for; the pass reads `mapped`)."""
        return [mapped_item(event) for event in self.mapped]

    @property
    def event_index(self) -> list[int]:
        return [event[0] for event in self.mapped]

    def error(self, index: int, name: str, message: str) -> None:
        self.errors.append({"index": index, "field": name, "message": message})


def messages_checked(messages, *, what: str) -> list:
    """The request's list of messages, or the error the native batch gives for it."""
    if not isinstance(messages, list):
        raise DomainError(f"Expected {what}.", errors={"batch": ["Expected a list of events."]})
    if not messages:
        raise DomainError("The batch is empty.", errors={"batch": ["Send at least one event."]})
    limit = settings.INGEST_MAX_BATCH
    if len(messages) > limit:
        raise DomainError(
            f"A batch holds at most {limit:,} events (got {len(messages):,}).",
            errors={"batch": [f"At most {limit} events per batch."]},
            status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    return messages


def digits_int(value) -> int | None:
    """A string of ASCII digits as its number, else None. At most 18 digits: no age or epoch
    time is longer, `int()` refuses over 4,300 digits, and a longer number overflows the float
    the epoch parser takes (both were a 500)."""
    if isinstance(value, str) and len(value) < 19 and value.isascii() and value.isdigit():
        return int(value)
    return None


def parse_time(value) -> datetime | None:
    """ISO 8601 (UTC when naive) or epoch seconds/milliseconds → aware datetime, else None."""
    return timestamp_parse(value)


def event_time(timestamp, sent_at: datetime | None, now: datetime, *, offset=None):
    """The native `timestamp` of a message: its own time moved by the sender's clock skew
    (`now − sent_at`, as PostHog and Segment do), an aware UTC datetime. A time without
    `sent_at`, or one that does not parse, goes through as sent and the native pass judges it.
    PostHog's `offset` (milliseconds before sending) stands for a missing timestamp."""
    if timestamp is None:
        if isinstance(offset, int | float) and not isinstance(offset, bool) and math.isfinite(offset):
            try:
                return now - timedelta(milliseconds=offset)
            except OverflowError:
                return None
        return None
    if sent_at is None:
        return timestamp
    if type(timestamp) is str:  # what SDKs send: parsed here without a further call
        try:
            when = datetime.fromisoformat(timestamp)
        except ValueError:
            return timestamp
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    else:
        when = timestamp_parse(timestamp)
        if when is None:
            return timestamp
    try:
        return now + (when - sent_at)
    except (OverflowError, ValueError):
        return timestamp


def message_uuid(message_id) -> str | None:
    """A stable event uuid for an SDK's message id (a string or number), else None: the id
    itself when it is a UUID (Segment's, RudderStack's and most SDKs' are uuid4s; the
    validation pass lower-cases it), else RFC 4122's uuid5 of it in MESSAGE_ID_NAMESPACE,
    spelled out (`uuid.uuid5` builds two UUID objects; this runs for every message)."""
    if type(message_id) is str and UUID_RE.fullmatch(message_id):
        return message_id
    if isinstance(message_id, int) and not isinstance(message_id, bool):
        message_id = str(message_id)
    if not isinstance(message_id, str) or not message_id or len(message_id) > 1000:
        return None
    h = hashlib.sha1(_NAMESPACE_BYTES + message_id.encode()).hexdigest()
    # Version 5 in the 13th digit, RFC 4122's variant in the top bits of the 17th.
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def present(value) -> bool:
    return value is not None and value != ""


def person_fields(traits) -> dict:
    """SDK traits (`$set`, Segment `traits`) → the end-user fields of a person update: email,
    age and gender by name (PostHog's `$email` too), everything else as properties. An age
    sent as digits counts as the number; anything else is left for the native pass to refuse."""
    if not traits:
        return {}
    if not isinstance(traits, dict):
        return {"properties": traits}  # the native pass refuses it with the field's name
    rest = dict(traits)
    out = {}
    email, dollar_email = rest.pop("email", None), rest.pop("$email", None)
    email = email if present(email) else dollar_email
    if present(email):
        out["email"] = email
    age = rest.pop("age", None)
    if isinstance(age, str) and (number := digits_int(age.strip())) is not None:
        age = number
    if present(age):
        out["age"] = age
    gender = rest.pop("gender", None)
    if present(gender):
        out["gender"] = gender
    if rest:
        out["properties"] = rest
    return out


def group_account(groups):
    """The account of PostHog's `$groups` (`{"company": "acme", …}`): its `company`, else its
    first value. An end user belongs to one account."""
    if not isinstance(groups, dict) or not groups:
        return None
    value = groups.get("company")
    if present(value):
        return value
    return next((value for value in groups.values() if present(value)), None)
