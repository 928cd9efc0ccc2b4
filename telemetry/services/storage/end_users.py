"""End users for the write path: a bulk upsert that writes only new or changed users, and
the process cache that spares the lookup of users seen in batch after batch."""

import functools
import time
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.local_cache import LocalCache
from tenants.models import Organization

from ...models import EndUser

_ENDUSER_TABLE = EndUser._meta.db_table
# Bound the parameters of one statement (SQLite allows 32,766; PostgreSQL 65,535).
_UPSERT_CHUNK = 1000

# An end-user row as `end_users_upsert` takes it.
UserRow = dict[str, Any]
# (id, email, age, gender, properties, member_id, account_id, first_seen, last_seen), times as
# epoch seconds.
StoredUser = tuple[Any, ...]


def _merge_user_rows(rows: Iterable[UserRow]) -> dict[str, UserRow]:
    """One row per external_id (an upsert may not touch a row twice): later values win,
    first/last seen span every row."""
    merged: dict[str, UserRow] = {}
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
        for field in ("age", "member_id", "account_id"):
            if row.get(field) is not None:
                cur[field] = row[field]
        if row.get("properties"):
            cur["properties"] = {**(cur.get("properties") or {}), **row["properties"]}
        if row.get("once"):
            cur["once"] = once_merged(cur.get("once"), row["once"])
        for field, pick in (("first_seen", min), ("last_seen", max)):
            value = row.get(field)
            if value is not None:
                cur[field] = value if cur.get(field) is None else pick(cur[field], value)
    return merged


def once_merged(first: dict[str, Any] | None, later: dict[str, Any]) -> dict[str, Any]:
    """Two `$set_once` updates of one person: the first value of each field or property wins."""
    if not first:
        return later
    merged = {**later, **first}
    if "properties" in first and "properties" in later:
        merged["properties"] = {**later["properties"], **first["properties"]}
    return merged


def _once_applied(row: UserRow, stored: StoredUser | None) -> UserRow:
    """The row with its `once` values moved into the fields neither the row nor the stored
    user has (`$set_once`: a value set before, or set in the same request, is kept)."""
    once = row.pop("once", None)
    if not once:
        return row
    _id, email, age, gender, properties = stored[:5] if stored is not None else (None, "", None, "", None)
    for field, present in (("email", email), ("age", age), ("gender", gender)):
        if field in once and row.get(field) in (None, "") and present in (None, ""):
            row[field] = once[field]
    if once.get("properties"):
        if isinstance(properties, str):
            properties = orjson.loads(properties)
        properties = properties or {}
        sent = row.get("properties") or {}
        missing = {k: v for k, v in once["properties"].items() if k not in properties and k not in sent}
        if missing:
            row["properties"] = {**missing, **sent}
    return row


def _seen_span(row: UserRow) -> UserRow:
    first = row.get("first_seen") or row.get("last_seen")
    last = row.get("last_seen") or row.get("first_seen")
    if first is not None:
        row["first_seen"], row["last_seen"] = first, last
    return row


def end_users_upsert(org: Organization, rows: Iterable[UserRow], *, distinct: bool = False) -> dict[str, int]:
    """Insert or update end users of `org` in bulk; returns `{external_id: id}`.

    Each row: `external_id` and optionally `email`, `age`, `gender`, `properties` (merged
    into the stored ones), `member_id` (the platform member whose profile it is),
    `account_id` (an Account id), `once` (`$set_once`: email, age, gender or properties
    written only where the user has none yet), `first_seen`, `last_seen` (aware datetimes;
    a row with only one of them uses it for both). Empty or missing values never erase stored
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
    pending: list[UserRow] = []
    remember: list[tuple[Hashable, tuple[int, float | None, float | None]]] = []
    with_properties = any(row.get("properties") or row.get("once") for row in lookup.values())
    known = _end_users_known(org, list(lookup), with_properties=with_properties)
    for ext, row in lookup.items():
        stored = known.get(ext)
        row = _once_applied(row, stored)
        if stored is None or _user_changed(row, stored):
            pending.append(row)
        else:
            out[ext] = stored[0]
            remember.append(((org.pk, ext), (stored[0], stored[7], stored[8])))
    if pending:
        pending.sort(key=lambda row: row["external_id"])  # one lock order: no deadlocks
        upsert = _end_users_upsert_postgres if connection.vendor == "postgresql" else _end_users_upsert_sqlite
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


def _end_users_cached(org: Organization, merged: dict[str, UserRow]) -> tuple[dict[str, int], dict[str, UserRow]]:
    """(ids known from the cache, the rows that need the database)."""
    if not end_user_cache:
        return {}, merged
    clock = time.monotonic()
    out: dict[str, int] = {}
    lookup: dict[str, UserRow] = {}
    for ext, row in merged.items():
        hit = end_user_cache.get((org.pk, ext), clock)
        if hit is not None and row.keys() <= _SEEN_ONLY and not _seen_changed(row, hit[1], hit[2]):
            out[ext] = hit[0]
        else:
            lookup[ext] = row
    return out, lookup


LAST_SEEN_RESOLUTION = timedelta(minutes=1)
_LAST_SEEN_STEP = LAST_SEEN_RESOLUTION.total_seconds()


def _end_users_known(org: Organization, external_ids: list[str], *, with_properties: bool) -> dict[str, StoredUser]:
    """{external_id: (id, email, age, gender, properties, member_id, account_id, first_seen,
    last_seen)},
    the two times as epoch seconds (a float loads in C; a timestamptz costs a Python regex)."""
    if connection.vendor == "postgresql":
        # A constant text[] keeps the unique (organization_id, external_id) index in use, and
        # when the planner's statistics still think an organisation has hardly any end users
        # (a new tenant's first import: it then scans the organisation's rows instead), each
        # row costs one lookup in the constant's hash. `= ANY(ARRAY(SELECT …))` compared every
        # row with every id: 0.3 s per 1,000-user batch at 12,000 end users, growing with them.
        match = "= ANY(%s::text[])"
        epoch = "EXTRACT(EPOCH FROM {})::float8"
        ids = _pg_text_array(external_ids)
    else:
        match = "IN (SELECT value FROM json_each(%s))"
        epoch = "(julianday({}) - 2440587.5) * 86400.0"
        ids = orjson.dumps([str(e) for e in external_ids]).decode()
    props = "properties" if with_properties else "NULL"
    sql = (
        f"SELECT external_id, id, email, age, gender, {props}, member_id, account_id, "
        f"{epoch.format('first_seen')}, {epoch.format('last_seen')} "
        f"FROM {_ENDUSER_TABLE} WHERE organization_id = %s AND external_id {match}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [org.pk, ids])
        return {row[0]: row[1:] for row in cursor.fetchall()}


def _pg_text_array(values: list[str]) -> str:
    """PostgreSQL's text form of a text[] (each element quoted, `\\` and `"` escaped)."""
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{v}"' for v in quoted) + "}"


def _user_changed(row: UserRow, stored: StoredUser) -> bool:
    _id, email, age, gender, properties, member_id, account_id, first_seen, last_seen = stored
    if row.get("email") and row["email"] != email:
        return True
    if row.get("age") is not None and row["age"] != age:
        return True
    if row.get("gender") and row["gender"] != gender:
        return True
    if row.get("member_id") is not None and row["member_id"] != member_id:
        return True
    if row.get("account_id") is not None and row["account_id"] != account_id:
        return True
    if row.get("properties"):
        if isinstance(properties, str):
            properties = orjson.loads(properties)
        if any(properties.get(k, _MISSING) != v for k, v in row["properties"].items()):
            return True
    return _seen_changed(row, first_seen, last_seen)


def _seen_changed(row: UserRow, first_seen: float | None, last_seen: float | None) -> bool:
    """Whether the row widens the stored span (epoch seconds) by enough to write it."""
    first, last = row.get("first_seen"), row.get("last_seen")
    if first is not None and (first_seen is None or first.timestamp() < first_seen - 0.001):
        return True
    if last is not None and (last_seen is None or last.timestamp() - last_seen >= _LAST_SEEN_STEP):
        return True
    return False


_MISSING = object()


def _upsert_sql(source: str, merge_props: str) -> str:
    t = _ENDUSER_TABLE
    return (
        f"INSERT INTO {t} AS u (organization_id, external_id, email, age, gender, properties, member_id, "
        f"account_id, first_seen, last_seen, created_at) {source} "
        "ON CONFLICT (organization_id, external_id) DO UPDATE SET "
        "email = CASE WHEN EXCLUDED.email <> '' THEN EXCLUDED.email ELSE u.email END, "
        "age = COALESCE(EXCLUDED.age, u.age), "
        "gender = CASE WHEN EXCLUDED.gender <> '' THEN EXCLUDED.gender ELSE u.gender END, "
        f"properties = {merge_props}, "
        "member_id = COALESCE(EXCLUDED.member_id, u.member_id), "
        "account_id = COALESCE(EXCLUDED.account_id, u.account_id), "
        "first_seen = CASE WHEN u.first_seen IS NULL OR EXCLUDED.first_seen < u.first_seen "
        "THEN EXCLUDED.first_seen ELSE u.first_seen END, "
        "last_seen = CASE WHEN u.last_seen IS NULL OR EXCLUDED.last_seen > u.last_seen "
        "THEN EXCLUDED.last_seen ELSE u.last_seen END "
        "RETURNING external_id, id"
    )


def _user_columns(chunk: list[UserRow], now: datetime) -> tuple[list[Any], ...]:
    cols: tuple[list[Any], ...] = ([], [], [], [], [], [], [], [], [])
    ext, email, age, gender, props, member, account, first, last = cols
    for row in chunk:
        ext.append(str(row["external_id"]))
        email.append(row.get("email") or "")
        age.append(row.get("age"))
        gender.append(row.get("gender") or "")
        props.append(orjson.dumps(row["properties"]).decode() if row.get("properties") else "{}")
        member.append(row.get("member_id"))
        account.append(row.get("account_id"))
        first.append(row.get("first_seen") or now)
        last.append(row.get("last_seen") or now)
    return cols


# One statement text whatever the number of users: the rows travel as one JSON document
# (orjson serialises it in C) and PostgreSQL unpacks it; a VALUES list of 10,000
# placeholders, or Python-quoted arrays, cost more to build than the upsert itself.
_PG_UPSERT = _upsert_sql(
    "SELECT %s, s.external_id, s.email, s.age, s.gender, s.properties, s.member_id, s.account_id, "
    "s.first_seen, s.last_seen, %s FROM jsonb_to_recordset(%s::jsonb) AS s(external_id text, email text, "
    "age smallint, gender text, properties jsonb, member_id bigint, account_id bigint, first_seen timestamptz, "
    "last_seen timestamptz)",
    "u.properties || EXCLUDED.properties",
)


def _end_users_upsert_postgres(org: Organization, chunk: list[UserRow], now: datetime) -> list[tuple[Any, ...]]:
    doc = orjson.dumps(
        [
            {
                "external_id": str(row["external_id"]),
                "email": row.get("email") or "",
                "age": row.get("age"),
                "gender": row.get("gender") or "",
                "properties": row.get("properties") or {},
                "member_id": row.get("member_id"),
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


def _end_users_upsert_sqlite(org: Organization, chunk: list[UserRow], now: datetime) -> list[tuple[Any, ...]]:
    adapt = connection.ops.adapt_datetimefield_value
    created = adapt(now)
    params: list[Any] = []
    for ext, email, age, gender, props, member, account, first, last in zip(*_user_columns(chunk, now), strict=True):
        params += [org.pk, ext, email, age, gender, props, member, account, adapt(first), adapt(last), created]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
    sql = _upsert_sql(f"VALUES {values}", "json_patch(u.properties, EXCLUDED.properties)")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
