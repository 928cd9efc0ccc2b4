"""The write path for telemetry rows, shared by the ingestion endpoints, the stream consumer
and the MovieLens seeder.

Every function takes plain values (ids, dicts) and does a constant number of queries per
call, whatever the number of rows: the hot path is the database, so these functions are
the whole difference between 10,000 and 40,000 events a second.

PostgreSQL writes events with `COPY` (≈ 3× a multi-row INSERT): straight into the table
when no uuid conflicts, else into a temporary staging table followed by one
`INSERT … SELECT … ON CONFLICT (organization_id, uuid) DO NOTHING`. SQLite runs the
`INSERT OR IGNORE` of `bulk_create(ignore_conflicts=True)` as one `executemany`.
"""

import functools
import hashlib
import time
import uuid as uuid_lib
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from core.local_cache import LocalCache
from core.text import hidden_character_error

from ..models import DirtyDay, EndUser, Feature, UsageEvent

# Columns written for an event, in COPY order. `id` comes from the table's sequence.
EVENT_COLUMNS = (
    "uuid",
    "organization_id",
    "feature_id",
    "end_user_id",
    "event_type",
    "session_id",
    "session_duration",
    "metadata",
    "timestamp",
    "received_at",
)
_STAGE = "telemetry_usageevent_stage"
_EVENT_TABLE = UsageEvent._meta.db_table
_ENDUSER_TABLE = EndUser._meta.db_table
# Bound the parameters of one statement (SQLite allows 32,766; PostgreSQL 65,535).
_UPSERT_CHUNK = 1000


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


# --- Features -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def feature_ref_error(ref: str) -> str | None:
    """Why a feature key or name (as sent, or typed in the admin) is refused, or None: zero-width,
    bidi-override and other invisible characters would make two features look alike."""
    return hidden_character_error(ref)


def feature_key_for(ref: str) -> str:
    """The slug a feature named `ref` gets when it is created on the fly. Unicode names keep
    their letters; a name with no sluggable character gets a stable hash."""
    key = slugify(ref, allow_unicode=True)[:100]
    if not key:
        key = "feature-" + hashlib.sha256(ref.encode()).hexdigest()[:12]
    return key


def features_resolve(org, refs: Iterable, *, create: bool) -> dict:
    """Map feature references to feature ids within `org`: `{ref: feature_id}`.

    An `int` ref is a feature id; a `str` ref is a key, else a name, else (when `create`)
    a new feature with that name and its slug as key. Refs that resolve to nothing are
    absent from the result — including ids of another organisation's features, which are
    simply not found. One query, plus one insert and one re-read when creating.
    """
    ids = set()
    names = set()
    for ref in refs:
        if isinstance(ref, int) and not isinstance(ref, bool):
            ids.add(ref)
        elif isinstance(ref, str) and ref:
            names.add(ref)
    if not ids and not names:
        return {}
    keys = names | {feature_key_for(name) for name in names}
    # Plain SQL with the lists as JSON: this runs on every request, and building the ORM
    # query cost more CPU than the query itself.
    if _is_postgres():
        ids_in = "id = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)::bigint))"
        str_in = "= ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
    else:
        ids_in = "id IN (SELECT value FROM json_each(%s))"
        str_in = "IN (SELECT value FROM json_each(%s))"
    sql = (
        f"SELECT id, key, name FROM {Feature._meta.db_table} WHERE organization_id = %s "
        f"AND ({ids_in} OR key {str_in} OR name {str_in})"
    )
    params = [org.pk, orjson.dumps(list(ids)).decode(), orjson.dumps(list(keys)).decode()]
    params.append(orjson.dumps(list(names)).decode())
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return _features_match(org, ids, names, rows, create=create)


def _features_match(org, ids, names, rows, *, create):
    by_id = {}
    by_key = {}
    by_name = {}
    for fid, key, name in rows:
        by_id[fid] = fid
        by_key[key] = fid
        # Several features may share a name; the oldest (lowest id) wins, deterministically.
        if name not in by_name or fid < by_name[name]:
            by_name[name] = fid
    out = {ref: ref for ref in ids if ref in by_id}
    missing = []
    for name in names:
        fid = by_key.get(name) or by_name.get(name) or by_key.get(feature_key_for(name))
        if fid is not None:
            out[name] = fid
        else:
            missing.append(name)
    if missing and create:
        # Concurrent requests may create the same keys: ignore conflicts, then re-read.
        wanted = {}
        for name in sorted(missing):
            key = feature_key_for(name)
            # "Dark Mode" and "dark-mode" in one request: the display name wins as the name.
            if key not in wanted or wanted[key] == key:
                wanted[key] = name
        Feature.objects.bulk_create(
            [Feature(organization_id=org.pk, key=key, name=name[:200]) for key, name in wanted.items()],
            ignore_conflicts=True,
        )
        created = dict(Feature.objects.filter(organization_id=org.pk, key__in=wanted).values_list("key", "id"))
        for name in missing:
            fid = created.get(feature_key_for(name))
            if fid is not None:
                out[name] = fid
    return out


# Process-local `(organisation id, ref) → feature id`, for queue mode only: a `track` call
# otherwise pays a features query for the one feature it names. The consumer re-checks every
# feature id when it stores the events, so an id cached after its feature was deleted costs
# a dead-lettered event, never an orphan row; direct mode always asks the database.
feature_cache = LocalCache(max_entries=50_000)


def features_resolve_cached(org, refs: Iterable, *, create: bool) -> dict:
    """`features_resolve`, answering from the process cache what it found recently."""
    clock = time.monotonic()
    out, missing = {}, []
    for ref in refs:
        fid = feature_cache.get((org.pk, ref), clock)
        if fid is None:
            missing.append(ref)
        else:
            out[ref] = fid
    if missing:
        found = features_resolve(org, missing, create=create)
        out.update(found)
        feature_cache.set_many(
            (((org.pk, ref), fid) for ref, fid in found.items()), settings.INGEST_FEATURE_CACHE_SECONDS
        )
    return out


def feature_ids_existing(org_id: int, feature_ids: Iterable[int]) -> set[int]:
    return set(Feature.objects.filter(organization_id=org_id, pk__in=set(feature_ids)).values_list("pk", flat=True))


# --- End users ------------------------------------------------------------------------------


def _merge_user_rows(rows):
    """One row per external_id (an upsert may not touch a row twice): later values win,
    first/last seen span every row."""
    merged = {}
    for row in rows:
        row = _seen_span(dict(row))
        ext = row["external_id"]
        cur = merged.get(ext)
        if cur is None:
            merged[ext] = row
            continue
        for field in ("email", "gender"):
            if row.get(field):
                cur[field] = row[field]
        for field in ("age", "account_id"):
            if row.get(field) is not None:
                cur[field] = row[field]
        if row.get("properties"):
            cur["properties"] = {**(cur.get("properties") or {}), **row["properties"]}
        for field, pick in (("first_seen", min), ("last_seen", max)):
            value = row.get(field)
            if value is not None:
                cur[field] = value if cur.get(field) is None else pick(cur[field], value)
    return merged


def _seen_span(row):
    first = row.get("first_seen") or row.get("last_seen")
    last = row.get("last_seen") or row.get("first_seen")
    if first is not None:
        row["first_seen"], row["last_seen"] = first, last
    return row


def end_users_upsert(org, rows: Iterable[dict], *, distinct: bool = False) -> dict:
    """Insert or update end users of `org` in bulk; returns `{external_id: id}`.

    Each row: `external_id` and optionally `email`, `age`, `gender`, `properties` (merged
    into the stored ones), `account_id`, `first_seen`, `last_seen` (aware datetimes; a row
    with only one of them uses it for both). Empty or missing values never erase stored
    ones; `last_seen` moves forward in steps of at least `LAST_SEEN_RESOLUTION`.

    One plain SELECT finds the known users; only new or changed ones go through an
    `INSERT … ON CONFLICT DO UPDATE … RETURNING`, sorted by external_id. A busy SDK sends
    the same users in every batch: re-writing (and row-locking) them each time would make
    concurrent requests queue behind each other's locks and double the WAL.

    `distinct`: the rows already hold one row per external_id with both seen times, as the
    ingestion pass builds them, so merging them again is skipped.
    """
    merged = {row["external_id"]: row for row in rows} if distinct else _merge_user_rows(rows)
    if not merged:
        return {}
    now = timezone.now()
    out, lookup = _end_users_cached(org, merged)
    if not lookup:
        return out
    pending, remember = [], []
    with_properties = any(row.get("properties") for row in lookup.values())
    known = _end_users_known(org, list(lookup), with_properties=with_properties)
    for ext, row in lookup.items():
        stored = known.get(ext)
        if stored is None or _user_changed(row, stored):
            pending.append(row)
        else:
            out[ext] = stored[0]
            remember.append(((org.pk, ext), (stored[0], stored[6], stored[7])))
    if pending:
        pending.sort(key=lambda row: row["external_id"])  # one lock order: no deadlocks
        upsert = _end_users_upsert_postgres if _is_postgres() else _end_users_upsert_sqlite
        for start in range(0, len(pending), _UPSERT_CHUNK):
            ids = dict(upsert(org, pending[start : start + _UPSERT_CHUNK], now))
            out.update(ids)
            for row in pending[start : start + _UPSERT_CHUNK]:
                # The stored span is at least this wide: remembering the row's own times
                # can only make a later request write again, never skip a needed write.
                first, last = row.get("first_seen"), row.get("last_seen")
                first, last = first and first.timestamp(), last and last.timestamp()
                remember.append(((org.pk, row["external_id"]), (ids[row["external_id"]], first, last)))
    # Only what was committed: a rolled-back insert must not leave ids in the cache (SQLite
    # would even hand the same id to the next new end user). Outside a transaction this runs
    # at once.
    transaction.on_commit(functools.partial(end_user_cache.set_many, remember, settings.INGEST_END_USER_CACHE_SECONDS))
    return out


# Process-local `(organisation id, external id) → (id, first_seen, last_seen)`: SDKs send
# the same active users in batch after batch, and looking 1,000 of them up cost the database
# as much as writing the 1,000 events. Only rows that carry nothing but the seen times are
# answered from it. first_seen only moves earlier and last_seen only later, so a stale entry
# can cause an unneeded write but never a missed one. An end user deleted by staff may still
# get events from other processes for INGEST_END_USER_CACHE_SECONDS.
end_user_cache = LocalCache(max_entries=200_000)
_SEEN_ONLY = frozenset({"external_id", "first_seen", "last_seen"})


def _end_users_cached(org, merged):
    """(ids known from the cache, the rows that need the database)."""
    if not end_user_cache:
        return {}, merged
    clock = time.monotonic()
    out, lookup = {}, {}
    for ext, row in merged.items():
        hit = end_user_cache.get((org.pk, ext), clock)
        if hit is not None and row.keys() <= _SEEN_ONLY and not _seen_changed(row, hit[1], hit[2]):
            out[ext] = hit[0]
        else:
            lookup[ext] = row
    return out, lookup


LAST_SEEN_RESOLUTION = timedelta(minutes=1)
_LAST_SEEN_STEP = LAST_SEEN_RESOLUTION.total_seconds()


def _end_users_known(org, external_ids, *, with_properties):
    """{external_id: (id, email, age, gender, properties, account_id, first_seen, last_seen)},
    the two times as epoch seconds (a float loads in C; a timestamptz costs a Python regex)."""
    if _is_postgres():
        # `= ANY(ARRAY(…))` keeps the unique (organization_id, external_id) index in use; an
        # `IN (SELECT …)` semi-join lets the planner scan every end user of the organisation.
        match = "= ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
        epoch = "EXTRACT(EPOCH FROM {})::float8"
    else:
        match = "IN (SELECT value FROM json_each(%s))"
        epoch = "(julianday({}) - 2440587.5) * 86400.0"
    props = "properties" if with_properties else "NULL"
    sql = (
        f"SELECT external_id, id, email, age, gender, {props}, account_id, "
        f"{epoch.format('first_seen')}, {epoch.format('last_seen')} "
        f"FROM {_ENDUSER_TABLE} WHERE organization_id = %s AND external_id {match}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [org.pk, orjson.dumps([str(e) for e in external_ids]).decode()])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def _user_changed(row, stored):
    _id, email, age, gender, properties, account_id, first_seen, last_seen = stored
    if row.get("email") and row["email"] != email:
        return True
    if row.get("age") is not None and row["age"] != age:
        return True
    if row.get("gender") and row["gender"] != gender:
        return True
    if row.get("account_id") is not None and row["account_id"] != account_id:
        return True
    if row.get("properties"):
        if isinstance(properties, str):
            properties = orjson.loads(properties)
        if any(properties.get(k, _MISSING) != v for k, v in row["properties"].items()):
            return True
    return _seen_changed(row, first_seen, last_seen)


def _seen_changed(row, first_seen, last_seen):
    """Whether the row widens the stored span (epoch seconds) by enough to write it."""
    first, last = row.get("first_seen"), row.get("last_seen")
    if first is not None and (first_seen is None or first.timestamp() < first_seen - 0.001):
        return True
    if last is not None and (last_seen is None or last.timestamp() - last_seen >= _LAST_SEEN_STEP):
        return True
    return False


_MISSING = object()


def _upsert_sql(source, merge_props):
    t = _ENDUSER_TABLE
    return (
        f"INSERT INTO {t} AS u (organization_id, external_id, email, age, gender, properties, account_id, "
        f"first_seen, last_seen, created_at) {source} "
        "ON CONFLICT (organization_id, external_id) DO UPDATE SET "
        "email = CASE WHEN EXCLUDED.email <> '' THEN EXCLUDED.email ELSE u.email END, "
        "age = COALESCE(EXCLUDED.age, u.age), "
        "gender = CASE WHEN EXCLUDED.gender <> '' THEN EXCLUDED.gender ELSE u.gender END, "
        f"properties = {merge_props}, "
        "account_id = COALESCE(EXCLUDED.account_id, u.account_id), "
        "first_seen = CASE WHEN u.first_seen IS NULL OR EXCLUDED.first_seen < u.first_seen "
        "THEN EXCLUDED.first_seen ELSE u.first_seen END, "
        "last_seen = CASE WHEN u.last_seen IS NULL OR EXCLUDED.last_seen > u.last_seen "
        "THEN EXCLUDED.last_seen ELSE u.last_seen END "
        "RETURNING external_id, id"
    )


def _user_columns(chunk, now):
    cols = ([], [], [], [], [], [], [], [])
    ext, email, age, gender, props, account, first, last = cols
    for row in chunk:
        ext.append(str(row["external_id"]))
        email.append(row.get("email") or "")
        age.append(row.get("age"))
        gender.append(row.get("gender") or "")
        props.append(orjson.dumps(row["properties"]).decode() if row.get("properties") else "{}")
        account.append(row.get("account_id"))
        first.append(row.get("first_seen") or now)
        last.append(row.get("last_seen") or now)
    return cols


# One statement text whatever the number of users: the rows travel as one JSON document
# (orjson serialises it in C) and PostgreSQL unpacks it; a VALUES list of 10,000
# placeholders, or Python-quoted arrays, cost more to build than the upsert itself.
_PG_UPSERT = _upsert_sql(
    "SELECT %s, s.external_id, s.email, s.age, s.gender, s.properties, s.account_id, "
    "s.first_seen, s.last_seen, %s FROM jsonb_to_recordset(%s::jsonb) AS s(external_id text, email text, "
    "age smallint, gender text, properties jsonb, account_id bigint, first_seen timestamptz, last_seen timestamptz)",
    "u.properties || EXCLUDED.properties",
)


def _end_users_upsert_postgres(org, chunk, now):
    doc = orjson.dumps(
        [
            {
                "external_id": str(row["external_id"]),
                "email": row.get("email") or "",
                "age": row.get("age"),
                "gender": row.get("gender") or "",
                "properties": row.get("properties") or {},
                "account_id": row.get("account_id"),
                "first_seen": row.get("first_seen") or now,
                "last_seen": row.get("last_seen") or now,
            }
            for row in chunk
        ]
    ).decode()
    with connection.cursor() as cursor:
        cursor.execute(_PG_UPSERT, [org.pk, now, doc])
        return cursor.fetchall()


def _end_users_upsert_sqlite(org, chunk, now):
    adapt = connection.ops.adapt_datetimefield_value
    created = adapt(now)
    params = []
    for ext, email, age, gender, props, account, first, last in zip(*_user_columns(chunk, now), strict=True):
        params += [org.pk, ext, email, age, gender, props, account, adapt(first), adapt(last), created]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
    sql = _upsert_sql(f"VALUES {values}", "json_patch(u.properties, EXCLUDED.properties)")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# --- Events ---------------------------------------------------------------------------------


def _metadata_json(metadata) -> str:
    """A row's metadata as JSON text: already-encoded text or bytes pass through."""
    if metadata is None:
        return "{}"
    if isinstance(metadata, str):
        return metadata
    if isinstance(metadata, bytes):
        return metadata.decode()
    return orjson.dumps(metadata).decode()


# COPY's text format: a backslash, tab, newline or carriage return inside a value must be
# escaped; NUL cannot be stored at all (ingestion refuses it).
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def _copy_text(value) -> str:
    if not isinstance(value, str):
        value = str(value)
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _copy_payload(rows, now) -> bytes:
    """The rows as one COPY text-format payload, in EVENT_COLUMNS order. Built as one string
    instead of a `write_row` per row: the per-row call and its per-value dumpers were a
    quarter of the Python time of a 1,000-event request."""
    iso = {}  # a batch shares a handful of timestamps: format each once

    def when(value):
        text = iso.get(value)
        if text is None:
            text = iso[value] = value.isoformat()
        return text

    lines = []
    append = lines.append
    for row in rows:
        end_user = row.get("end_user_id")
        duration = row.get("session_duration")
        append(
            f"{row.get('uuid') or uuid_lib.uuid4()}\t{row['organization_id']}\t{row['feature_id']}\t"
            f"{_COPY_NULL if end_user is None else end_user}\t"
            f"{_copy_text(row.get('event_type') or 'interaction')}\t{_copy_text(row.get('session_id') or '')}\t"
            f"{_COPY_NULL if duration is None else repr(float(duration))}\t"
            f"{_copy_text(_metadata_json(row.get('metadata')))}\t"
            f"{when(row['timestamp'])}\t{when(row.get('received_at') or now)}\n"
        )
    return "".join(lines).encode()


def _events_insert_postgres(rows) -> int:
    """`COPY` straight into the events table inside a savepoint: the common case (no uuid
    stored before) at raw COPY speed. A unique violation (a retried request, a re-seed, a
    uuid repeated in `rows`) rolls the savepoint back and takes the conflict-skipping path:
    COPY into a staging table, then `INSERT … SELECT … ON CONFLICT DO NOTHING`."""
    payload = _copy_payload(rows, timezone.now())
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    try:
        with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {_EVENT_TABLE} ({cols}) FROM STDIN") as copy:
                copy.write(payload)
        return len(rows)
    except IntegrityError:
        pass
    return _events_insert_staged(payload, cols)


def _events_insert_staged(payload, cols) -> int:
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # The staging table lives as long as the connection; ON COMMIT DELETE ROWS empties
        # it at the end of each transaction, so concurrent requests never see each other.
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ("
            "uuid uuid, organization_id bigint, feature_id bigint, end_user_id bigint, "
            "event_type varchar(64), session_id varchar(128), session_duration double precision, "
            'metadata jsonb, "timestamp" timestamptz, received_at timestamptz) ON COMMIT DELETE ROWS; '
            # Inside a caller's longer transaction, rows of an earlier call are still there.
            f"DELETE FROM {_STAGE}"
        )
        with connection.wrap_database_errors, cursor.cursor.copy(f"COPY {_STAGE} ({cols}) FROM STDIN") as copy:
            copy.write(payload)
        cursor.execute(
            f"INSERT INTO {_EVENT_TABLE} ({cols}) SELECT {cols} FROM {_STAGE} "
            "ON CONFLICT (organization_id, uuid) DO NOTHING"
        )
        return cursor.rowcount


def _sqlite_datetime(value):
    """What Django stores in a SQLite DateTimeField: naive UTC, ISO with a space."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ")


def _sqlite_uuid(value):
    """Django keeps a UUIDField on SQLite as 32 hex characters."""
    if isinstance(value, uuid_lib.UUID):
        return value.hex
    return value.replace("-", "").lower() if len(value) == 36 else uuid_lib.UUID(value).hex


def _sqlite_row(row, now):
    """A row's values in EVENT_COLUMNS order as SQLite stores them, defaults filled in."""
    return (
        _sqlite_uuid(row.get("uuid") or uuid_lib.uuid4()),
        row["organization_id"],
        row["feature_id"],
        row.get("end_user_id"),
        row.get("event_type") or "interaction",
        row.get("session_id") or "",
        row.get("session_duration"),
        _metadata_json(row.get("metadata")),
        _sqlite_datetime(row["timestamp"]),
        _sqlite_datetime(row.get("received_at") or now),
    )


def _events_insert_sqlite(rows) -> int:
    """`INSERT OR IGNORE` through one `executemany` — the statement
    `bulk_create(ignore_conflicts=True)` runs, without building a model instance per row or
    splitting the rows into 999-parameter statements (that tripled the CPU per event)."""
    now = timezone.now()
    params = [_sqlite_row(row, now) for row in rows]
    cols = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    marks = ", ".join(["%s"] * len(EVENT_COLUMNS))
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # sqlite3 counts the rows changed on this connection: the difference is exactly the
        # rows inserted, the ignored duplicates excluded.
        before = connection.connection.total_changes
        cursor.executemany(f"INSERT OR IGNORE INTO {_EVENT_TABLE} ({cols}) VALUES ({marks})", params)
        return connection.connection.total_changes - before


def events_insert(*, rows: list[dict]) -> int:
    """Insert events, skipping any `(organization_id, uuid)` already stored or repeated in
    `rows`; returns how many rows were inserted.

    Each row has the model's field names: `organization_id`, `feature_id`, `timestamp`
    (aware datetime) required; `uuid` (UUID or str; generated when missing),
    `end_user_id`, `event_type`, `session_id`, `session_duration`, `metadata` (dict, or a
    JSON string already serialised) and `received_at` optional.
    """
    if not rows:
        return 0
    if _is_postgres():
        return _events_insert_postgres(rows)
    return _events_insert_sqlite(rows)


# --- Late data ----------------------------------------------------------------------------


def days_mark_dirty(org_id: int, dates: Iterable[date]) -> int:
    """Mark past UTC days of an organisation for re-rollup (today is rolled up hourly
    anyway). Re-marking refreshes `marked_at`, so a rollup that started before this mark
    knows the day changed again. Returns the number of days marked."""
    today = datetime.now(UTC).date()
    past = sorted({d for d in dates if d < today})
    if not past:
        return 0
    now = timezone.now()
    DirtyDay.objects.bulk_create(
        [DirtyDay(organization_id=org_id, date=d, marked_at=now) for d in past],
        update_conflicts=True,
        unique_fields=["organization", "date"],
        update_fields=["marked_at"],
    )
    return len(past)
