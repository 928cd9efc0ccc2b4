"""SDK events in the validation pass: what an SDK mapping (`telemetry.compat`) read from a
request's messages, checked by the pass's own validators and made into the same rows.

A mapping reads each message once and hands over a `MappedEvent`, a tuple with the native
fields in fixed places, instead of a native item dict that the pass would read again field by
field. `mapped_validate` checks it exactly as `EventCheck.event_row` checks the native item
`mapped_item` spells out (same fields, same order, same validators and messages, so the same
errors), with the common values taken inline and what a batch repeats (feature names,
timestamps) checked once per distinct value. tests/test_mapped_events.py holds the two
passes equal over generated events.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.text import hidden_character

from .context import EventContext
from .end_users import user_touch
from .validate import EventCheck
from .values import UUID_RE

# (index, uuid, feature, user_id, event_type, session_id, timestamp, metadata, account_id):
# `index` is the message's in the request (errors and results name it); the others are the
# native event fields of the same names, as the mapping read them (any value: the pass
# judges them). A mapped event has no feature_id, session_duration or person attributes.
MappedEvent = tuple[int, Any, Any, Any, Any, Any, Any, Any, Any]
MAPPED_FIELDS = ("uuid", "feature", "user_id", "event_type", "session_id", "timestamp", "metadata", "account_id")


def mapped_item(event: MappedEvent) -> dict[str, Any]:
    """The native event item a mapped event stands for."""
    return dict(zip(MAPPED_FIELDS, event[1:], strict=True))


def mapped_validate(
    ctx: EventContext, events: Sequence[MappedEvent], *, uuids_canonical: bool = False
) -> tuple[list[dict[str, Any]], EventCheck]:
    """One pass over mapped events → (rows, the pass's state), as `items_validate` gives for
    their native items (`mapped_item`) with `index_of` their indices.

    `uuids_canonical`: the mapping guarantees every uuid is None or a UUID in canonical
    lower-case form (Segment's, which checked each `messageId` to choose between it and its
    uuid5), so it is taken as it is instead of being matched again."""
    check = EventCheck(ctx, len(events))
    rows: list[dict[str, Any]] = []
    append = rows.append
    errors = check.errors
    users = check.users
    seen = check.seen_uuids
    own_user = check.own_user
    org_id, now = check.org_id, check.now
    # A batch names a few features and a few times (events of the same second): each
    # distinct text (or skew-corrected time) is checked once; only valid ones are kept.
    refs: dict[str, str] = {}
    times: dict[str | datetime, datetime] = {}
    fresh = check.fresh_uuids
    for position, (
        index,
        value_uuid,
        feature,
        user_id,
        event_type,
        session_id,
        value_ts,
        metadata,
        account,
    ) in enumerate(events):
        check.position = position
        check.index = index
        errors_before = len(errors)
        # As in `event_row`, each field in turn: the common value inline, anything else
        # through the field's validator (which records the error).
        ref = (type(feature) is str and refs.get(feature)) or _feature(check, refs, feature)
        event_uuid: str | None
        if value_uuid is None:
            event_uuid = fresh.get(position)
        else:
            event_uuid = (
                value_uuid
                if uuids_canonical
                else value_uuid.lower()
                if type(value_uuid) is str and UUID_RE.fullmatch(value_uuid)
                else check.uuid(value_uuid)
            )
        ts = (
            now
            if value_ts is None
            else ((type(value_ts) is datetime or type(value_ts) is str) and times.get(value_ts))
            or _timestamp(check, times, value_ts)
        )
        event_type = (
            event_type
            if type(event_type) is str and 0 < len(event_type) <= 64 and "\x00" not in event_type
            else check.event_type(event_type)
        )
        session_id = (
            session_id
            if type(session_id) is str and len(session_id) <= 128 and "\x00" not in session_id
            else check.session_id(session_id)
        )
        dumped = check.metadata(metadata)
        external_id = (
            own_user is None
            and type(user_id) is str
            and len(user_id) <= 200
            and (stripped := user_id.strip())
            and hidden_character(stripped) is None
            and stripped
        ) or check.user_id(user_id)
        account = None if account is None else check.account_of(account, user_id)
        if len(errors) > errors_before:
            continue
        if value_uuid is not None:  # a client-chosen uuid may repeat within the request
            if event_uuid in seen:
                check.duplicates.append(index)
                continue
            seen.add(event_uuid)
        if external_id is not None:
            user_row: dict[str, Any] = {} if account is None else {"_account": account}
            if own_user is not None:
                user_row.update(own_user)
            user_touch(users, external_id, user_row, ts)  # type: ignore[arg-type]
        append(
            {
                "uuid": event_uuid,
                "organization_id": org_id,
                "_index": index,
                "_ref": ref,
                "_ref_field": "feature",
                "_user": external_id,
                "event_type": event_type,
                "session_id": session_id,
                "session_duration": None,
                "metadata": dumped,
                "timestamp": ts,
                "received_at": now,
            }
        )
    return rows, check


def _feature(check: EventCheck, refs: dict[str, str], value: object) -> str | None:
    """The feature ref of a value not met before in the batch (`refs` keeps valid texts)."""
    ref = check.feature(value)
    if ref is not None:
        refs[value] = ref  # type: ignore[index]
    return ref


def _timestamp(check: EventCheck, times: dict[str | datetime, datetime], value: object) -> datetime | None:
    """The checked time of a value not met before in the batch (`times` keeps valid texts
    and datetimes)."""
    errors_before = len(check.errors)
    ts = check.timestamp(value)
    if (type(value) is datetime or type(value) is str) and len(check.errors) == errors_before:
        times[value] = ts  # type: ignore[assignment]
    return ts
