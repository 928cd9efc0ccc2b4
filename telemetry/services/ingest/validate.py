"""The validation pass of ingestion: every event is read once, field by field, by small
per-field validators.

The request around the pass (the caller, the clock, the `org_id` check) is in `context`; the
end-user rows the events fold into, in `end_users`.

The pass is written for speed (it runs for every one of 25,000+ events a second): plain type
checks with the common case first, no serializer objects. A validator returns the field's
normalised value and records what is wrong with it as `{index, field, message}`; an event
that gained an error is skipped, the others become rows.
"""

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from core.text import hidden_character_error

from ...models import EndUser
from .. import storage
from .context import MIN_TIMESTAMP, EventContext
from .end_users import user_touch
from .values import (
    EVENT_FIELDS,
    NUL_MESSAGE,
    UUID_RE,
    FreshUUIDs,
    json_object_dump,
    skew_applied,
    text_error,
    timestamp_parse,
    uuid_normalise,
)

_EMAIL_RE = re.compile(r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$")
# A longer "session" is a unit mistake, and sums of huge values would overflow the rollups.
_MAX_SESSION_SECONDS = 365 * 86400
_MAX_ID = 2**63  # a bigint: larger ids cannot exist and would fail the query, not the item

# An item error as the batch endpoint answers it: {index, field, message}.
ItemError = dict[str, Any]


def items_validate(
    ctx: EventContext, items: Sequence[object], index_of: Sequence[int] | None = None
) -> tuple[list[dict[str, Any]], "EventCheck"]:
    """One pass over the items → (rows, the pass's state: `users`, `errors`, `duplicates`).

    rows: normalised events (feature still as `_ref`, end user as `_user`, the index errors
    and results name as `_index`); users: {external_id: upsert row}. `index_of[i]` is the
    index reported for `items[i]` (an SDK batch's message), `i` itself by default.
    """
    check = EventCheck(ctx, len(items))
    rows: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        check.position = position
        check.index = position if index_of is None else index_of[position]
        if not isinstance(item, dict):
            check.error("non_field_errors", "Each event must be a JSON object.")
            continue
        row = check.event_row(item)
        if row is not None:
            rows.append(row)
    return rows, check


class EventCheck:
    """The state of one pass: the errors so far, the end users met, the uuids seen. Each
    field validator takes the field's value, records an error for the current `index` when
    the value is wrong, and returns the normalised value."""

    def __init__(self, ctx: EventContext, n: int) -> None:
        self.position = 0  # of the item in the request's list of events
        self.index = 0  # the item's index in errors and results
        self.errors: list[ItemError] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.duplicates: list[int] = []  # indices of events whose uuid repeats within the request
        self.seen_uuids: set[str | None] = set()
        self.now = ctx.now
        self.max_ts = ctx.max_ts
        self.min_ts = ctx.min_ts
        self.oldest = ctx.oldest
        self.max_metadata = ctx.max_metadata
        self.own_user = ctx.own_user
        self.skew = ctx.skew
        self.org_id = ctx.org.pk
        self.fresh_uuids = FreshUUIDs(n)
        # An SDK's batch repeats a few timestamps (events of the same second): parse each once.
        # Only timestamps in range are kept, so one found here needs no further check.
        self.valid_ts: dict[str, datetime] = {}

    def error(self, name: str, message: str) -> None:
        self.errors.append({"index": self.index, "field": name, "message": message})

    def event_row(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """The row for one event, or None when a field is wrong or its uuid repeats."""
        errors_before = len(self.errors)
        ref: int | str | None
        event_uuid: str | None
        if not item.keys() <= EVENT_FIELDS:
            self.unknown_fields(item)
        value = item.get("feature_id")
        if value is not None:
            ref, ref_field = self.feature_id(value), "feature_id"
        else:
            ref, ref_field = self.feature(item.get("feature")), "feature"
        # The common values (a canonical uuid, a timestamp met before in the batch, a short
        # text, a float in range) are taken inline: a call per field would cost ~15 % of the pass.
        value = item.get("uuid")
        client_uuid = value is not None
        if not client_uuid:
            event_uuid = self.fresh_uuids.get(self.position)
        else:
            event_uuid = value.lower() if type(value) is str and UUID_RE.fullmatch(value) else self.uuid(value)
        value = item.get("timestamp")
        ts = (type(value) is str and self.valid_ts.get(value)) or self.timestamp(value)
        value = item.get("event_type")
        event_type = (
            value if type(value) is str and 0 < len(value) <= 64 and "\x00" not in value else self.event_type(value)
        )
        value = item.get("session_id")
        session_id = (
            value if type(value) is str and len(value) <= 128 and "\x00" not in value else self.session_id(value)
        )
        value = item.get("session_duration")
        duration = (
            value if type(value) is float and 0 <= value <= _MAX_SESSION_SECONDS else self.session_duration(value)
        )
        metadata = self.metadata(item.get("metadata"))
        external_id = self.user_id(item.get("user_id"))
        value = item.get("account_id")
        account = None if value is None else self.account_of(value, item.get("user_id", external_id))
        if len(self.errors) > errors_before:
            return None
        user_row = None
        if external_id is not None:
            user_row = self.user_attributes(item, account)
            if user_row is None:
                return None
        if client_uuid:  # a client-chosen uuid may repeat within the request
            if event_uuid in self.seen_uuids:
                self.duplicates.append(self.index)
                return None
            self.seen_uuids.add(event_uuid)
        if external_id is not None:
            # An item without errors has its end-user row and its timestamp.
            if self.own_user is not None:
                user_row.update(self.own_user)  # type: ignore[union-attr]
            user_touch(self.users, external_id, user_row, ts)  # type: ignore[arg-type]
        return {
            "uuid": event_uuid,
            "organization_id": self.org_id,
            "_index": self.index,
            "_ref": ref,
            "_ref_field": ref_field,
            "_user": external_id,
            "event_type": event_type,
            "session_id": session_id,
            "session_duration": duration,
            "metadata": metadata,
            "timestamp": ts,
            "received_at": self.now,
        }

    # --- the event's fields -----------------------------------------------------------------

    def unknown_fields(self, item: dict[str, Any]) -> None:
        for name in sorted(key for key in item if key not in EVENT_FIELDS):
            self.error(name, "Unknown field; free-form data goes in metadata.")

    def account_of(self, value: object, user_id: object) -> str | None:
        """The external id of the account an event or person update names (`account_id`);
        `user_id` is the end user's id as sent (an account is set on an end user)."""
        account = self.external_id("account_id", value)
        if account is not None and user_id is None:
            self.error("account_id", "Needs a user_id: the account is the end user's.")
            return None
        return account

    def feature_id(self, value: object) -> int | None:
        ref = None
        if isinstance(value, int) and not isinstance(value, bool):
            ref = value
        # isascii: "²".isdigit() is true, and int("²") fails.
        elif isinstance(value, str) and len(value) < 20 and value.isascii() and value.isdigit():
            ref = int(value)
        if ref is None or not 0 < ref < _MAX_ID:
            self.error("feature_id", "Must be an integer feature id.")
            return None
        return ref

    def feature(self, value: object) -> str | None:
        """A feature by key or name (when no feature_id is given)."""
        message: str | None
        if value is None:
            message = "Either feature_id or feature (key or name) is required."
        elif not isinstance(value, str) or not value.strip():
            message = "Must be a non-empty string (feature key or name)."
        elif len(value) > 200:
            message = "Must be at most 200 characters."
        elif "\x00" in value:
            message = NUL_MESSAGE
        else:
            ref = value.strip()
            message = storage.feature_ref_error(ref)
            if message is None:
                return ref
        self.error("feature", message)
        return None

    def uuid(self, value: object) -> str | None:
        event_uuid = uuid_normalise(value)
        if event_uuid is None:
            self.error("uuid", "Must be a UUID string.")
        return event_uuid

    def timestamp(self, value: object) -> datetime | None:
        if value is None:
            return self.now
        # The SDK mappings pass aware UTC datetimes (skew-corrected): no parsing to do.
        ts = value if type(value) is datetime and value.tzinfo is UTC else timestamp_parse(value)
        if ts is not None and self.skew is not None:
            ts = skew_applied(ts, self.skew)
        if ts is None:
            self.error("timestamp", "Must be an ISO 8601 date-time or epoch seconds.")
        elif ts > self.max_ts:
            self.error("timestamp", "Must not be more than 24 hours in the future.")
        elif ts < self.min_ts:
            if self.min_ts == MIN_TIMESTAMP:
                self.error("timestamp", "Must not be before 1970.")
            elif self.min_ts == self.oldest:
                self.error(
                    "timestamp",
                    f"Must not be before {self.min_ts:%Y-%m-%d}: events more than "
                    f"{settings.INGEST_MAX_AGE_DAYS} days old are refused (INGEST_MAX_AGE_DAYS; "
                    "a timestamp of 0 is a client without a clock).",
                )
            else:
                self.error(
                    "timestamp",
                    f"Must not be before {self.min_ts:%Y-%m-%d}: raw events are kept for "
                    f"{settings.RAW_EVENT_RETENTION_MONTHS} months (RAW_EVENT_RETENTION_MONTHS).",
                )
        elif isinstance(value, str):
            self.valid_ts[value] = ts
        return ts

    def event_type(self, value: object) -> Any:
        if value is None or value == "":
            return "interaction"
        if type(value) is str and len(value) <= 64 and "\x00" not in value:
            return value
        if message := text_error(value, 64):
            self.error("event_type", message)
        return value

    def session_id(self, value: object) -> Any:
        if value is None:
            return ""
        if type(value) is str and len(value) <= 128 and "\x00" not in value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if message := text_error(value, 128):
            self.error("session_id", message)
        return value

    def session_duration(self, value: object) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.error("session_duration", "Must be a number of seconds.")
        elif value < 0:
            self.error("session_duration", "Must not be negative.")
        elif value > _MAX_SESSION_SECONDS:
            self.error("session_duration", f"Must be at most {_MAX_SESSION_SECONDS:,} seconds (a year).")
        else:
            return float(value)
        return value

    def metadata(self, value: object) -> Any:
        if value:
            dumped, message = json_object_dump(value, self.max_metadata)
            if message:
                self.error("metadata", message)
            return dumped
        if value is None or value == {}:
            return "{}"
        self.error("metadata", "Must be a JSON object.")
        return value

    def user_id(self, value: object) -> Any:
        """The end user's external id: the sender's own for a person (JWT), else as sent."""
        own_user = self.own_user
        if own_user is not None:
            if value not in (None, "", own_user["external_id"]):
                self.error("user_id", "You can only send events as yourself; omit user_id.")
            return own_user["external_id"]
        return self.external_id("user_id", value)

    def external_id(self, name: str, value: object) -> str | None:
        """A tenant's own id (of an end user, an account): a non-empty string or a number."""
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            self.error(name, "Must be a non-empty string of at most 200 characters.")
        elif "\x00" in value:
            self.error(name, NUL_MESSAGE)
        elif message := hidden_character_error(value.strip()):
            # Shown on the pages, in exports and e-mails: a U+202E would make one id read as another.
            self.error(name, message)
        else:
            return value.strip()
        return None

    # --- the end user's attributes ----------------------------------------------------------

    def user_attributes(self, item: dict[str, Any], account: str | None = None) -> dict[str, Any] | None:
        """Optional end-user attributes sent with an event → upsert fields, or None if invalid.
        `account`: the external id of the end user's account (resolved to an id later)."""
        row: dict[str, Any] = {} if account is None else {"_account": account}
        if "email" not in item and "age" not in item and "gender" not in item and "properties" not in item:
            return row
        errors_before = len(self.errors)
        for name, attribute in (
            ("email", self.email),
            ("age", self.age),
            ("gender", self.gender),
            ("properties", self.properties),
        ):
            value = attribute(item.get(name))
            if value is not None:
                row[name] = value
        return row if len(self.errors) == errors_before else None

    def email(self, value: object) -> str | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or len(value) > 254 or not _EMAIL_RE.match(value):
            self.error("email", "Must be a valid e-mail address.")
            return None
        return value

    def age(self, value: object) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 150):
            self.error("age", "Must be an integer between 0 and 150.")
            return None
        return value

    def gender(self, value: object) -> str | None:
        if value in (None, ""):
            return None
        code = EndUser.gender_code(value)
        if code is None:
            self.error("gender", "Must be one of F, M, O (female, male, other).")
        return code

    def properties(self, value: object) -> Any:
        """Stored only when non-empty; checked like metadata."""
        if value is None:
            return None
        _dumped, message = json_object_dump(value, self.max_metadata)
        if message:
            self.error("properties", message)
            return None
        return value or None
