"""PostHog's capture format → native events, person updates and accounts.

Bodies: `{"api_key", "batch": [events], "sent_at"}` (posthog-python and the other server
SDKs on `/batch/`), a list of events or one event (posthog-js on `/e/`, `/i/v0/e/`,
`/capture/`). An event: `{event, distinct_id, properties, timestamp, uuid, $set, $set_once}`.

- feature ← `event`; end user ← `distinct_id` (or `properties.distinct_id`), none for
  personless events (`$process_person_profile: false`); uuid ← `uuid`; session ←
  `properties.$session_id`; event_type ← `page` for `$pageview`, `screen` for `$screen`,
  `capture` otherwise; timestamp ← `timestamp` corrected by the skew of `sent_at` (the body's,
  the event's, or posthog-js's `?_=` milliseconds); the other properties → metadata.
- `$set` / `$set_once` (top level or in properties) update the person; `$set`, `$set_once`,
  `$identify` and `$create_alias` are person updates only, not usage events.
- `$groupidentify` creates or updates the account `$group_key` (name and properties from
  `$group_set`); `$groups` on any event sets the sender's account.
"""

from datetime import datetime

from core.exceptions import DomainError

from .mapping import (
    SdkBatch,
    digits_int,
    event_time,
    group_account,
    messages_checked,
    parse_time,
    person_fields,
    present,
)

PERSON_ONLY = frozenset({"$set", "$set_once", "$identify", "$create_alias"})
GROUP_IDENTIFY = "$groupidentify"
_EVENT_TYPES = {"$pageview": "page", "$screen": "screen"}
# Not copied into metadata: the key, and what is stored in columns or on the person.
# ($session_id, the session column, is taken out first.)
_NOT_METADATA = ("token", "api_key", "distinct_id", "$set", "$set_once")
_WHAT = 'a PostHog event, a list of events or {"batch": [...]}'


def _messages(payload) -> tuple[list, object]:
    """(events, the body's `sent_at`) of any PostHog body shape."""
    if isinstance(payload, dict) and "batch" in payload:
        return messages_checked(payload["batch"], what=_WHAT), payload.get("sent_at")
    if isinstance(payload, dict) and "event" in payload:
        return [payload], payload.get("sent_at")
    if isinstance(payload, list):
        return messages_checked(payload, what=_WHAT), None
    raise DomainError(f"Expected {_WHAT}.", errors={"batch": ["Expected a list of events."]})


def posthog_batch(payload, *, now: datetime, sent_at_ms=None) -> SdkBatch:
    """Map one PostHog request. `sent_at_ms`: posthog-js's `?_=` query parameter."""
    messages, body_sent_at = _messages(payload)
    batch = SdkBatch(count=len(messages))
    default_sent_at = parse_time(body_sent_at) or parse_time(digits_int(sent_at_ms))
    # The skew-corrected time of each timestamp text the batch's events share, computed once.
    times: dict[str, object] = {}
    for index, message in enumerate(messages):
        if type(message) is not dict:
            batch.error(index, "non_field_errors", "Each event must be a JSON object.")
            continue
        _map_one(batch, index, message, now, default_sent_at, times)
    return batch


def _map_one(batch, index, message, now, default_sent_at, times):
    """One message: an event (read into the tuple the ingestion pass takes,
    `services.ingest.mapped`, which checks its values), a person update, an account, or
    both. It runs for every message of a batch, so what the SDKs send is read inline. The
    parsed body is the request's own: the properties become the event's metadata in place,
    without the keys stored elsewhere, rather than being copied for each event."""
    get = message.get
    name = get("event")
    if type(name) is not str or not name.strip():
        batch.error(index, "event", "Required: the event's name, a non-empty string.")
        return
    properties = get("properties")
    if properties is None:
        properties = {}
    elif type(properties) is not dict:
        batch.error(index, "properties", "Must be a JSON object.")
        return
    user_id = get("distinct_id", properties.get("distinct_id"))
    if user_id is None or user_id == "":
        batch.error(index, "distinct_id", "Required: the distinct_id of the person (or of the personless event).")
        return
    when = _time_of(message, times, default_sent_at, now)
    personless = properties.get("$process_person_profile") is False
    groups = properties.get("$groups")
    account = None if groups is None or personless else group_account(groups)
    if name[0] == "$":  # PostHog's own events: person updates, groups, page views
        event_type = _own_event(batch, index, message, name, properties, user_id, when, personless, account)
        if event_type is None:
            return
    else:
        if not personless and _has_updates(message, properties):
            batch.people.append(_person(index, user_id, when, message, properties))
        event_type = "capture"
    session = properties.pop("$session_id", None)
    for key in _NOT_METADATA:
        properties.pop(key, None)
    batch.mapped.append(
        (index, get("uuid"), name, None if personless else user_id, event_type, session, when, properties, account)
    )


def _time_of(message, times, default_sent_at, now):
    """The event's time corrected by the skew of its `sent_at` (else the batch's); `times`
    holds the corrected time of each timestamp text met in the batch with the batch's `sent_at`."""
    timestamp = message.get("timestamp")
    sent = message.get("sent_at")
    if type(timestamp) is str and sent is None:
        when = times.get(timestamp)
        if when is None:
            when = times[timestamp] = event_time(timestamp, default_sent_at, now)
        return when
    sent_at = default_sent_at if sent is None else (parse_time(sent) or default_sent_at)
    return event_time(timestamp, sent_at, now, offset=message.get("offset"))


def _own_event(batch, index, message, name, properties, user_id, when, personless, account):
    """A `$` event: its person update and account, and its event type, or None when it is
    no usage event (`$set`, `$identify`, `$groupidentify`, …)."""
    person_only = name in PERSON_ONLY
    if name == GROUP_IDENTIFY:
        _group_identify(batch, index, properties, when)
    if person_only or (not personless and _has_updates(message, properties)):
        batch.people.append(_person(index, user_id, when, message, properties))
    if person_only or name == GROUP_IDENTIFY:
        if present(account):
            batch.people.append({"index": index, "user_id": user_id, "timestamp": when, "account_id": account})
        return None
    return _EVENT_TYPES.get(name, "capture")


def _person(index, user_id, when, message, properties) -> dict:
    return {"index": index, "user_id": user_id, "timestamp": when, **_updates(message, properties)}


def _has_updates(message, properties) -> bool:
    return "$set" in message or "$set_once" in message or "$set" in properties or "$set_once" in properties


def _updates(message, properties) -> dict:
    """The person fields of `$set`, and of `$set_once` as `once`, from the event or its properties."""
    values = {}
    for key in ("$set", "$set_once"):
        value = message.get(key, properties.get(key))
        fields = person_fields(value) if value is not None else {}
        if key == "$set":
            values.update(fields)
        else:
            values["once"] = fields
    return values


def _group_identify(batch, index, properties, when):
    group_set = properties.get("$group_set")
    account = {"index": index, "account_id": properties.get("$group_key"), "timestamp": when}
    if isinstance(group_set, dict):
        if present(group_set.get("name")):
            account["name"] = group_set["name"]
        account["properties"] = group_set
    elif group_set is not None:
        account["properties"] = group_set  # refused by the native pass, naming the field
    batch.accounts.append(account)
