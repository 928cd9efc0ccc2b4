"""Segment's (and RudderStack's) tracking API format → native events, person updates and
accounts.

Bodies: `{"batch": [messages], "sentAt"}` on `/v1/batch`, one message on `/v1/track`,
`/v1/identify`, `/v1/page`, `/v1/screen`, `/v1/group` and `/v1/alias` (the route names the call).

- track, page, screen are events: feature ← `event` (page and screen: their `name`, else
  `properties.name`, `category`, or the call type); end user ← `userId`, else
  `anonymousId`; uuid ← `messageId` when it is a UUID (what the SDKs send), else a uuid5 of
  it; event_type ← the call type; session ← `context.sessionId` or `properties.session_id`;
  account ← `context.groupId`; timestamp ← `timestamp` (or `originalTimestamp`) corrected by
  the skew of `sentAt`; `properties`, `category` and the context's fields of CONTEXT_KEPT →
  metadata.
- identify updates the person from `traits` (Rudder puts them in `context.traits`).
- group creates or updates the account `groupId` (name and properties from `traits`) and
  sets it as the sender's account.
- alias only records that the user was seen (users are not merged).
"""

from datetime import datetime

from core.exceptions import DomainError

from ..services.ingest.values import UUID_RE
from .mapping import SdkBatch, event_time, message_uuid, messages_checked, parse_time, person_fields, present

EVENT_CALLS = frozenset({"track", "page", "screen"})
CALLS = EVENT_CALLS | {"identify", "group", "alias"}
# The context fields an event keeps in its metadata (`{"context": {…}}`): what sent it and
# from where (library, app, os, page, locale, timezone). The others are stored in columns
# (sessionId, groupId), are the person's (traits: identify) or are device data the platform
# does not use and should not hoard (ip, userAgent, device ids, network, screen, campaign);
# keeping the whole context made every Segment event carry and parse them (docs/decisions.md).
CONTEXT_KEPT = frozenset({"library", "app", "os", "page", "locale", "timezone"})
_WHAT = 'a Segment batch {"batch": [...]}'


def segment_batch(payload, *, now: datetime, call: str | None = None) -> SdkBatch:
    """Map one Segment request; `call` is the route's call type (None for `/v1/batch`)."""
    if call is None:
        if not isinstance(payload, dict):
            raise DomainError(f"Expected {_WHAT}.", errors={"batch": ["Expected a list of messages."]})
        messages = messages_checked(payload.get("batch"), what=_WHAT)
    elif isinstance(payload, dict):
        messages = [payload]
    else:
        raise DomainError(f"Expected one {call} message, a JSON object.", errors={"body": ["Expected an object."]})
    batch = SdkBatch(count=len(messages), uuids_canonical=True)
    default_sent_at = parse_time(payload.get("sentAt")) if isinstance(payload, dict) else None
    # The skew-corrected time of each timestamp the batch's messages share (an SDK's batch
    # holds a few distinct ones), computed once.
    times: dict[str, object] = {}
    for index, message in enumerate(messages):
        if type(message) is not dict:
            batch.error(index, "non_field_errors", "Each message must be a JSON object.")
            continue
        kind = call or message.get("type")
        if type(kind) is not str or kind not in CALLS:
            batch.error(index, "type", f"Must be one of {', '.join(sorted(CALLS))}.")
        elif kind in EVENT_CALLS:
            _event(batch, index, message, kind, now, default_sent_at, times)
        else:
            _update(batch, index, message, kind, now, default_sent_at, times)
    return batch


def _context(batch, index, message):
    """The message's context (a dict), or None after recording why it is refused."""
    context = message.get("context")
    if context is None:
        return {}
    if type(context) is not dict:
        batch.error(index, "context", "Must be a JSON object.")
        return None
    return context


def _user_id(batch, index, message):
    user_id = message.get("userId")
    if user_id is None or user_id == "":
        user_id = message.get("anonymousId")
        if user_id is None or user_id == "":
            batch.error(index, "userId", "Required: userId or anonymousId.")
            return None
    return user_id


def _update(batch, index, message, kind, now, default_sent_at, times):
    """identify, group and alias: person and account updates."""
    context = _context(batch, index, message)
    if context is None:
        return
    user_id = _user_id(batch, index, message)
    if user_id is None:
        return
    when = _time_of(message, times, default_sent_at, now)
    if kind == "identify":
        traits = message.get("traits", context.get("traits"))
        batch.people.append({"index": index, "user_id": user_id, "timestamp": when, **person_fields(traits)})
        if present(context.get("groupId")):
            batch.people.append(_link(index, user_id, when, context["groupId"]))
    elif kind == "group":
        _group(batch, index, message, user_id, when)
    else:  # alias
        batch.people.append({"index": index, "user_id": user_id, "timestamp": when})


def _time_of(message, times, default_sent_at, now):
    """The message's time corrected by the skew of its `sentAt` (else the batch's); `times`
    holds the corrected time of each timestamp text met in the batch with the batch's `sentAt`."""
    timestamp = message.get("timestamp")
    if timestamp is None or timestamp == "":
        timestamp = message.get("originalTimestamp")
    sent = message.get("sentAt")
    if sent is None and type(timestamp) is str:
        when = times.get(timestamp)
        if when is None:
            when = times[timestamp] = event_time(timestamp, default_sent_at, now)
        return when
    sent_at = default_sent_at if sent is None else (parse_time(sent) or default_sent_at)
    return event_time(timestamp, sent_at, now)


def _link(index, user_id, when, account):
    return {"index": index, "user_id": user_id, "timestamp": when, "account_id": account}


def _group(batch, index, message, user_id, when):
    group_id = message.get("groupId")
    traits = message.get("traits")
    account = {"index": index, "account_id": group_id, "timestamp": when}
    if isinstance(traits, dict):
        if present(traits.get("name")):
            account["name"] = traits["name"]
        account["properties"] = traits
    elif traits is not None:
        account["properties"] = traits  # refused by the native pass, naming the field
    batch.accounts.append(account)
    batch.people.append(_link(index, user_id, when, group_id))


def _event(batch, index, message, kind, now, default_sent_at, times):
    """One event (track, page, screen), read once into the tuple the ingestion pass takes
    (`services.ingest.mapped`); the pass checks its values. It runs for every message of a
    batch, so the common case (what the SDKs send) is read inline, without further calls.
    The parsed body is the request's own: the message's properties become the event's
    metadata in place (with the kept context and the category), and its context loses what
    is stored in columns, instead of both being copied for each message."""
    get = message.get
    context = get("context")
    if context is not None and type(context) is not dict:
        batch.error(index, "context", "Must be a JSON object.")
        return
    user_id = get("userId")
    if user_id is None or user_id == "":
        user_id = _user_id(batch, index, message)
        if user_id is None:
            return
    when = _time_of(message, times, default_sent_at, now)
    properties = get("properties")
    if properties is None:
        properties = {}
    if type(properties) is not dict:
        batch.error(index, "properties", "Must be a JSON object.")
        return
    name = get("event") if kind == "track" else _page_name(message, properties, kind)
    if type(name) is not str or not name.strip():
        batch.error(index, "event", "Required: the event's name, a non-empty string.")
        return
    account = None
    if context:
        session = context.pop("sessionId", properties.get("session_id"))
        account = context.pop("groupId", None)
        # Usually all that is left is kept (what the server SDKs send: `library`).
        kept = context if CONTEXT_KEPT.issuperset(context) else {k: v for k, v in context.items() if k in CONTEXT_KEPT}
        if kept:
            properties["context"] = kept
    else:
        session = properties.get("session_id")
    category = get("category")
    if category is not None and category != "":
        properties["category"] = category
    message_id = get("messageId")
    # Lower-cased here, so the pass takes it as it is (`SdkBatch.uuids_canonical`).
    uuid = message_id.lower() if type(message_id) is str and UUID_RE.fullmatch(message_id) else message_uuid(message_id)
    batch.mapped.append((index, uuid, name, user_id, kind, session, when, properties, account))


def _page_name(message, properties, kind):
    for value in (message.get("name"), properties.get("name"), message.get("category")):
        if isinstance(value, str) and value.strip():
            return value
    return kind
