"""Queue mode: the Redis Stream between the ingestion endpoints and `consume_events`.

One stream entry carries one request's validated events (`{"org", "events", "users"}`
as JSON in field `d`), so a 1,000-event batch costs one `XADD`. Every queued event
already has its uuid, so an entry processed twice (a consumer died after committing but
before `XACK`) stores nothing twice: the insert skips `(organization_id, uuid)` conflicts.
"""

import logging
import uuid as uuid_lib
from datetime import UTC, date, datetime
from typing import Any

import orjson
import redis
from django.conf import settings
from django.db import DatabaseError, DataError, IntegrityError, InterfaceError, OperationalError, transaction

from core.redis_backoff import redis_client, redis_failed, redis_resting
from tenants.models import Organization

from ..models import Feature
from . import durability, storage

logger = logging.getLogger(__name__)

# A stream entry as redis-py answers it: (entry id, {field: value}), bytes throughout.
Entry = tuple[bytes, dict[bytes, bytes]]
# A decoded entry: (entry id, organisation id, event rows, end-user rows).
Decoded = tuple[bytes, int, list[dict[str, Any]], list[dict[str, Any]]]
# An entry for the dead-letter stream: (entry id, its fields, why).
Dead = tuple[bytes, dict[bytes, bytes], str]


def events_enqueue(org_id: int, rows: list[dict[str, Any]], users: list[dict[str, Any]]) -> bool:
    """XADD one request's normalised events; False when Redis is not configured, not
    reachable or not persistent (the caller then writes directly)."""
    url = settings.REDIS_URL
    if not url or redis_resting(url):
        return False
    payload = orjson.dumps({"org": org_id, "events": rows, "users": users})
    client = redis_client(url)
    try:
        if not durability.queue_accepts(url, client):
            return False  # a Redis that would lose the events: written directly instead
        client.xadd(settings.INGEST_STREAM, {"d": payload})
    except redis.RedisError as exc:
        durability.forget(url)
        redis_failed(url, "ingest stream (events are written directly)", exc)
        return False
    return True


def _parse_dt(value: object) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _decode(entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """A stream entry → (org_id, events, users); raises ValueError/KeyError when malformed."""
    data = orjson.loads(fields[b"d"])
    org_id = int(data["org"])
    events = data["events"]
    for event in events:
        event["organization_id"] = org_id
        # Canonical text, or ValueError (a malformed entry): it goes into COPY's text format.
        event["uuid"] = str(uuid_lib.UUID(str(event["uuid"])))
        event["timestamp"] = _parse_dt(event["timestamp"])
        event["received_at"] = _parse_dt(event.get("received_at"))
        event.pop("_index", None)
    users = data.get("users") or []
    for user in users:
        user["first_seen"] = _parse_dt(user.get("first_seen"))
        user["last_seen"] = _parse_dt(user.get("last_seen"))
    return org_id, events, users


def _entries_decode(entries: list[Entry], dead: list[Dead]) -> list[Decoded]:
    """[(entry id, org_id, events, users)] of the well-formed entries; the others go to `dead`."""
    decoded: list[Decoded] = []
    for entry_id, fields in entries:
        try:
            decoded.append((entry_id, *_decode(entry_id, fields)))
        except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
            dead.append((entry_id, fields, f"malformed: {exc}"))
    return decoded


def _without_deleted_orgs(entries: list[Entry], decoded: list[Decoded], dead: list[Dead]) -> list[Decoded]:
    """An organisation deleted while its events waited, or being deleted (its rows are going,
    chunk by chunk): nothing to attach them to."""
    org_ids = {item[1] for item in decoded}
    alive = set(Organization.objects.in_service().filter(pk__in=org_ids).values_list("pk", flat=True))
    if alive == org_ids:
        return decoded
    fields_of = dict(entries)
    for item in decoded:
        if item[1] not in alive:
            dead.append((item[0], fields_of[item[0]], f"organisation {item[1]} no longer exists or is being deleted"))
    return [item for item in decoded if item[1] in alive]


def _without_deleted_features(entries: list[Entry], decoded: list[Decoded], dead: list[Dead]) -> list[Decoded]:
    """Events carry no database FK constraints (speed), so a feature deleted while its
    events waited must be caught here rather than by the database. Only its events are
    dropped: the entry is dead-lettered whole, saying how many, and its other events are
    stored, as a direct write would have (a replay of it skips them by their uuids)."""
    feature_ids = {e["feature_id"] for item in decoded for e in item[2]}
    known = set(Feature.objects.filter(pk__in=feature_ids).values_list("pk", flat=True))
    if known == feature_ids:
        return decoded
    fields_of = dict(entries)
    kept: list[Decoded] = []
    for entry_id, org_id, events, users in decoded:
        stored = [e for e in events if e["feature_id"] in known]
        if len(stored) < len(events):
            missing = min({e["feature_id"] for e in events} - known)
            reason = f"feature {missing} no longer exists: {len(events) - len(stored)} of {len(events)} events dropped"
            dead.append((entry_id, fields_of[entry_id], reason))
        kept.append((entry_id, org_id, stored, users))
    return kept


# What the database answers when it refuses a value of an entry (too long, out of range, a
# broken reference): that entry is dead-lettered, the others are stored.
_REFUSED = (DataError, IntegrityError)


class StreamConsumer:
    """Reads the ingestion stream as one member of the consumer group and stores events.

    `run_once()` is one cycle: reclaim entries other consumers left pending longer than
    `min_idle_ms` (they crashed), read new entries, write them in one transaction, then
    XACK (and XDEL, so the stream length is the backlog). A missing stream or group is
    recreated. The command loops over it.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        consumer: str,
        stream: str | None = None,
        group: str | None = None,
        count: int = 20,
        block_ms: int = 1000,
        min_idle_ms: int = 60_000,
    ) -> None:
        self.client = client
        self.stream = stream or settings.INGEST_STREAM
        self.group = group or settings.INGEST_CONSUMER_GROUP
        self.consumer = consumer
        self.count = count
        self.block_ms = block_ms
        self.min_idle_ms = min_idle_ms
        self.dead_stream = f"{self.stream}:dead"
        self.events_stored = 0
        self.events_seen = 0
        self.entries_done = 0
        self.groups_recreated = 0
        self._own_pending_checked = False

    def ensure_group(self) -> bool:
        """Create the stream and the group unless they exist; True when it created the group.
        At id 0, so a group created after the stream delivers every entry already in it."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        logger.info("consumer %s created group %s on stream %s", self.consumer, self.group, self.stream)
        return True

    # --- reading -------------------------------------------------------------------------

    def read_own_pending(self) -> list[Entry]:
        """Entries this consumer name read before a restart and never acknowledged."""
        # RESP2: [[stream, [(id, fields), …]]], or nothing (redis-py types every protocol's shape).
        reply: Any = self.client.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=self.count)
        return reply[0][1] if reply else []

    def claim_stale(self) -> list[Entry]:
        """XAUTOCLAIM entries idle for at least `min_idle_ms` in other consumers' lists."""
        reply: Any = self.client.xautoclaim(
            self.stream, self.group, self.consumer, self.min_idle_ms, start_id="0-0", count=self.count
        )
        return [entry for entry in reply[1] if entry[1]]

    def read_new(self, block_ms: int | None = None) -> list[Entry]:
        block = self.block_ms if block_ms is None else block_ms
        reply: Any = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.count, block=block or None
        )
        return reply[0][1] if reply else []

    def next_entries(self, block_ms: int | None = None) -> list[Entry]:
        try:
            return self._next_entries(block_ms)
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
        # The stream or its group is gone: Redis restarted empty or lost its data. The
        # endpoints' XADD recreates the stream without a group, and a group created at id 0
        # delivers everything added since, so nothing queued meanwhile is skipped.
        logger.warning(
            "consumer %s: stream %s or group %s is missing (Redis restarted empty?)",
            self.consumer,
            self.stream,
            self.group,
        )
        self.ensure_group()
        self._own_pending_checked = False
        self.groups_recreated += 1
        return self._next_entries(block_ms)

    def _next_entries(self, block_ms: int | None) -> list[Entry]:
        if not self._own_pending_checked:
            entries = self.read_own_pending()
            if entries:
                return entries
            self._own_pending_checked = True
        entries = self.claim_stale()
        if entries:
            logger.info("consumer %s reclaimed %d stale entries", self.consumer, len(entries))
            return entries
        return self.read_new(block_ms)

    # --- writing -------------------------------------------------------------------------

    def store(self, entries: list[Entry]) -> int:
        """Write the entries' events in one transaction; returns rows inserted. Malformed
        entries, or entries the database refuses on their own (their organisation was
        deleted), go to the dead-letter stream instead of blocking the group forever."""
        dead: list[Dead] = []
        decoded = _entries_decode(entries, dead)
        if decoded:
            decoded = _without_deleted_orgs(entries, decoded, dead)
        if decoded:
            decoded = _without_deleted_features(entries, decoded, dead)
        inserted = self._write_or_isolate(entries, decoded, dead)
        for entry_id, fields, reason in dead:
            logger.error("ingest entry %s moved to %s (%s)", entry_id, self.dead_stream, reason)
            record: dict[Any, Any] = {**fields, b"error": reason.encode()[:1000]}
            self.client.xadd(self.dead_stream, record)
        return inserted

    def _write_or_isolate(self, entries: list[Entry], decoded: list[Decoded], dead: list[Dead]) -> int:
        """All entries in one write; when the database refuses a value of it, each entry on
        its own, so only the refused ones are dead-lettered. A database that is down, or
        that takes no writes at all for now, raises OperationalError."""
        try:
            return self._write(decoded)
        except _REFUSED:
            pass
        inserted = 0
        for item in decoded:
            try:
                inserted += self._write([item])
            except _REFUSED as exc:
                dead.append((item[0], dict(entries)[item[0]], f"refused: {exc}"))
        return inserted

    def _write(self, decoded: list[Decoded]) -> int:
        try:
            return self._write_rows(decoded)
        except (*_REFUSED, OperationalError, InterfaceError):
            raise
        except DatabaseError as exc:
            # Any other error refuses every write, whatever the entries hold: a read-only
            # database (a standby after a failover, maintenance), a table or column missing
            # (a consumer of a release whose migration has not run), a privilege revoked.
            # An outage, like a database down: the entries stay pending and the command
            # retries, instead of dead-lettering every one of them.
            raise OperationalError(str(exc)) from exc

    def _write_rows(self, decoded: list[Decoded]) -> int:
        if not decoded:
            return 0
        today = datetime.now(UTC).date()
        by_org: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for _entry_id, org_id, events, users in decoded:
            bucket = by_org.setdefault(org_id, ([], []))
            bucket[0].extend(events)
            bucket[1].extend(users)
        rows: list[dict[str, Any]] = []
        dirty: dict[int, set[date]] = {}
        # End users before (and outside) the events transaction, as the endpoints do.
        for org_id, (events, users) in by_org.items():
            user_ids = storage.end_users_upsert(Organization(pk=org_id), users) if users else {}
            for event in events:
                # Read, not popped: when a batch is refused, each entry is written again
                # on its own and needs its events' end users once more.
                ext = event.get("_user")
                event["end_user_id"] = user_ids.get(ext) if ext is not None else None
            rows.extend(events)
            dirty[org_id] = {e["timestamp"].date() for e in events if e["timestamp"].date() < today}
        with transaction.atomic():
            inserted = storage.events_insert(rows=rows)
            for org_id, days in dirty.items():
                if days:
                    storage.days_mark_dirty(org_id, days)
        self.events_seen += len(rows)
        return inserted

    def ack(self, entries: list[Entry]) -> None:
        ids = [entry_id for entry_id, _fields in entries]
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()

    def run_once(self, block_ms: int | None = None) -> int:
        """One cycle; returns the number of entries handled (0 = nothing to do)."""
        entries = self.next_entries(block_ms)
        if not entries:
            return 0
        inserted = self.store(entries)
        self.ack(entries)  # only after the commit above: a crash before this re-delivers
        self.events_stored += inserted
        self.entries_done += len(entries)
        return len(entries)
