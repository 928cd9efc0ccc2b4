"""A request's batch of events: validated in one pass (`validate`), features resolved in one
query, then written directly (one end-user upsert, one bulk insert) or queued on the Redis
stream. Each item that fails yields `{index, field, message}` errors and is skipped; the
valid ones are stored.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction

from core.days import day_start, today
from core.exceptions import DomainError, StorageUnavailable
from tenants.models import Organization, User

from ...models import UsageEvent
from .. import storage, stream
from .context import EventContext, org_ids_check
from .mapped import MappedEvent, mapped_validate
from .people import people_validate
from .validate import ItemError, items_validate

_DB_DOWN = (OperationalError, InterfaceError)

# An event row on its way to storage (the model's field names, plus `_`-prefixed private keys).
Row = dict[str, Any]
# Per row, what only validation needed: (index in the request, ref field, feature ref).
Private = tuple[int, str, Any]


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[ItemError] = field(default_factory=list)
    queued: bool = False
    # The normalised events that were valid (uuid, timestamp, …), in request order.
    events: list[Row] = field(default_factory=list)
    # The indices of the events not stored again: repeated within the request, or (direct
    # mode) stored before. Queued events stored before are known only to the consumer.
    duplicate_indices: list[int] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return len(self.events)


def _resolve_features(org: Organization, rows: list[Row], errors: list[ItemError], *, cached: bool) -> list[Row]:
    """Attach feature ids (one query at most); rows with an unknown feature become errors.
    They keep `_ref` and `_ref_field` until they are queued or written."""
    refs = {row["_ref"] for row in rows}
    resolve = storage.features_resolve_cached if cached else storage.features_resolve
    try:
        found = resolve(org, refs, create=org.auto_create_features)
    except _DB_DOWN as exc:
        raise StorageUnavailable() from exc
    kept: list[Row] = []
    for row in rows:
        fid = found.get(row["_ref"])
        if fid is None:
            errors.append(_unknown_feature(row["_index"], row["_ref_field"], row["_ref"]))
            continue
        row["feature_id"] = fid
        kept.append(row)
    return kept


def _unknown_feature(index: int, ref_field: str, ref: object) -> ItemError:
    return {"index": index, "field": ref_field, "message": f"Unknown feature {ref!r}."}


def _strip_private(rows: list[Row]) -> list[Private]:
    """Remove what only validation needed; returns it as `(index, ref field, ref)` per row."""
    return [(row.pop("_index"), row.pop("_ref_field"), row.pop("_ref")) for row in rows]


def _recheck_cached_features(
    org: Organization, rows: list[Row], private: list[Private], errors: list[ItemError]
) -> tuple[list[Row], list[Private]]:
    """Ids from the process cache, checked before a direct write (the stream consumer
    checks queued ones): an event whose feature was deleted meanwhile is resolved again, as
    direct mode would have (created anew when the organisation allows it), or refused."""
    try:
        existing = storage.feature_ids_existing(org.pk, {row["feature_id"] for row in rows})
        stale = {where[2] for row, where in zip(rows, private, strict=True) if row["feature_id"] not in existing}
        fresh = storage.features_resolve(org, stale, create=org.auto_create_features) if stale else {}
    except _DB_DOWN as exc:
        raise StorageUnavailable() from exc
    kept: list[Row] = []
    kept_private: list[Private] = []
    for row, where in zip(rows, private, strict=True):
        if row["feature_id"] not in existing:
            fid = fresh.get(where[2])
            if fid is None:
                errors.append(_unknown_feature(*where))
                continue
            row["feature_id"] = fid
        kept.append(row)
        kept_private.append(where)
    return kept, kept_private


def events_ingest(
    org: Organization,
    items: list[Any],
    *,
    user: User | None = None,
    people: Iterable[dict[str, Any]] = (),
    accounts: Iterable[dict[str, Any]] = (),
    index_of: list[int] | None = None,
    sent_at: datetime | None = None,
    mapped: Sequence[MappedEvent] | None = None,
    uuids_canonical: bool = False,
) -> IngestResult:
    """Validate `items` (event dicts) for `org` and store or queue the valid ones.

    `user` is the person sending (JWT), or None for an API key. `people` and `accounts` are
    person and account updates (`people.py`), stored with the events' end users; `index_of`
    maps each item to the index its errors and results name (an SDK request's message).
    `sent_at`: the client's clock when it sent the request; every timestamp (of the events
    and the person updates) is moved by the clock skew `now − sent_at`. `mapped`: an SDK
    request's events as its mapping read them (`mapped.py`), in place of `items`
    (`uuids_canonical`: as `mapped_validate` says).
    Raises Forbidden for an `org_id` of another organisation, StorageUnavailable when neither
    the queue nor the database can take the events.
    """
    ctx = EventContext(org, user, sent_at=sent_at)
    if mapped is not None:
        rows, check = mapped_validate(ctx, mapped, uuids_canonical=uuids_canonical)
    else:
        org_ids_check(org, items)
        rows, check = items_validate(ctx, items, index_of)
    person_users: Iterable[str] = ()
    account_rows: list[dict[str, Any]] = []
    if people or accounts:
        person_users, account_rows = people_validate(check, people, accounts)
        rejected = {error["index"] for error in check.errors}
        rows = [row for row in rows if row["_index"] not in rejected]  # a message whole or not at all
    errors, users = check.errors, check.users
    result = IngestResult(errors=errors, duplicates=len(check.duplicates), duplicate_indices=check.duplicates)
    queueing = settings.INGEST_MODE == "queue"
    private: list[Private] = []
    if rows:
        rows = _resolve_features(org, rows, errors, cached=queueing)
        private = _strip_private(rows)
    users = _users_of(rows, users, person_users)
    _accounts_attach(org, users, account_rows)
    if (rows or users) and queueing and stream.events_enqueue(org.pk, rows, list(users.values())):
        result.queued = True
        result.accepted = len(rows)
    elif rows or users:
        if queueing and rows:  # the stream is down: a direct write after all
            rows, private = _recheck_cached_features(org, rows, private, errors)
            users = _users_of(rows, users, person_users)
        result.accepted = _write_direct(org, rows, users)
        if result.accepted < len(rows):
            stored_before = _stored_before(org, rows, private)
            result.duplicates += len(stored_before)
            result.duplicate_indices += stored_before
    result.events = rows
    if errors:
        errors.sort(key=lambda e: e["index"])
    return result


def _users_of(
    rows: list[Row], users: dict[str, dict[str, Any]], person_users: Iterable[str] = ()
) -> dict[str, dict[str, Any]]:
    """The end users a valid event or person update names: one whose every event failed is
    not created."""
    used = {row["_user"] for row in rows}
    used.update(person_users)
    if used.issuperset(users):
        return users
    return {ext: u for ext, u in users.items() if ext in used}


def _accounts_attach(org: Organization, users: dict[str, dict[str, Any]], account_rows: list[dict[str, Any]]) -> None:
    """Create or update the accounts the request names (group calls, `account_id`) and put
    their ids on the end users' rows, before anything is written or queued."""
    refs = {u["_account"] for u in users.values() if "_account" in u}
    if not refs and not account_rows:
        return
    try:
        ids = storage.accounts_upsert(org, [*account_rows, *({"external_id": ref} for ref in refs)])
    except _DB_DOWN as exc:
        raise StorageUnavailable() from exc
    for row in users.values():
        ref = row.pop("_account", None)
        if ref is not None:
            row["account_id"] = ids[ref]


def _stored_before(org: Organization, rows: list[Row], private: list[Private]) -> list[int]:
    """The indices of `rows` the insert skipped because their uuid was stored before: all but
    those stored now, which carry this request's `received_at`. Found as the complement, since
    the event stored before may be gone while the dedupe table still skips its uuid (erased
    with its end user, or its month dropped)."""
    try:
        now = {
            str(value)
            for value in UsageEvent.objects.filter(
                organization_id=org.pk, uuid__in=[row["uuid"] for row in rows], received_at=rows[0]["received_at"]
            ).values_list("uuid", flat=True)
        }
    except _DB_DOWN as exc:
        raise StorageUnavailable() from exc
    return [where[0] for row, where in zip(rows, private, strict=True) if str(row["uuid"]) not in now]


def rows_finalize(rows: list[Row], user_ids: dict[str, int]) -> list[Row]:
    """Replace `_user` (external id) with `end_user_id`, ready for `storage.events_insert`."""
    for row in rows:
        ext = row.pop("_user", None)
        row["end_user_id"] = user_ids.get(ext) if ext is not None else None
    return rows


def past_days(rows: Iterable[Row], today_start: datetime) -> set[date]:
    return {row["timestamp"].date() for row in rows if row["timestamp"] < today_start}


def _write_direct(org: Organization, rows: list[Row], users: dict[str, dict[str, Any]]) -> int:
    today_start = day_start(today())
    try:
        if connection.vendor == "sqlite":
            # One writer at a time anyway: one transaction takes the write lock once.
            with transaction.atomic():
                user_ids = storage.end_users_upsert(org, users.values(), distinct=True) if users else {}
                inserted = _write_events(org, rows, user_ids, today_start)
        else:
            # End users first, in their own short transaction: their row locks must not be
            # held while the events are written, or concurrent requests for the same users
            # queue up behind each other.
            user_ids = storage.end_users_upsert(org, users.values(), distinct=True) if users else {}
            inserted = _write_events(org, rows, user_ids, today_start)
    except _DB_DOWN as exc:
        raise StorageUnavailable() from exc
    except DatabaseError as exc:
        # A database that refuses writes (read-only replica, disk full) is also "down"
        # for the sender: nothing was stored, so it must retry.
        if "read-only" in str(exc) or "could not extend" in str(exc):
            raise StorageUnavailable() from exc
        raise
    return inserted


def _write_events(org: Organization, rows: list[Row], user_ids: dict[str, int], today_start: datetime) -> int:
    rows = rows_finalize(rows, user_ids)
    days = past_days(rows, today_start)
    if not days:
        # The insert is its own transaction (no savepoint round trips around it).
        return storage.events_insert(rows=rows)
    with transaction.atomic():  # late events and their re-rollup marks commit together
        inserted = storage.events_insert(rows=rows)
        storage.days_mark_dirty(org.pk, days)
    return inserted


def event_track(org: Organization, item: object, *, user: User | None = None) -> tuple[Mapping[str, Any] | None, int]:
    """One event (the track endpoint) → (response body, HTTP status).

    Invalid → DomainError with `{field: [messages]}`. Direct mode → 201 `{id, uuid,
    timestamp}` (200 with the stored event when the uuid was already stored); queue
    mode → 202 with `id: null`.
    """
    if not isinstance(item, dict):
        raise DomainError("The body must be a JSON object (one event).", errors={"body": ["Expected an object."]})
    result = events_ingest(org, [item], user=user)
    if result.errors:
        errors: dict[str, list[str]] = {}
        for error in result.errors:
            errors.setdefault(error["field"], []).append(error["message"])
        first = result.errors[0]
        raise DomainError(f"{first['field']}: {first['message']}", errors=errors)
    event = result.events[0]
    if result.queued:
        return {"id": None, "uuid": event["uuid"], "timestamp": event["timestamp"], "queued": True}, 202
    try:
        stored = (
            UsageEvent.objects.filter(organization_id=org.pk, uuid=event["uuid"])
            .values("id", "uuid", "timestamp")
            .first()
        )
    except _DB_DOWN as exc:
        raise StorageUnavailable() from exc
    if stored is None:
        # A uuid the dedupe table still skips whose event is gone (erased, or its month
        # dropped): a duplicate all the same, answered with what the request said.
        return {"id": None, "uuid": event["uuid"], "timestamp": event["timestamp"]}, 200
    return stored, 201 if result.accepted else 200
