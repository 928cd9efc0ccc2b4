"""The write path for telemetry rows, shared by the ingestion endpoints, the stream consumer
and the MovieLens seeder.

Every function takes plain values (ids, dicts) and does a constant number of queries per
call, whatever the number of rows: the hot path is the database, so these functions are
the whole difference between 10,000 and 40,000 events a second.

PostgreSQL writes events with `COPY` (≈ 3× a multi-row INSERT): straight into the table
when no uuid conflicts, else into a temporary staging table followed by one
`INSERT … SELECT … ON CONFLICT (organization_id, uuid) DO NOTHING`. SQLite runs the
`INSERT OR IGNORE` of `bulk_create(ignore_conflicts=True)` as one `executemany`.

One module per concern: `features` (with the queue-mode feature cache), `end_users` (with
the end-user cache), `accounts`, `events` (COPY and SQLite inserts) and `dirty_days` (late data).
Callers use the package's names (tests patch them here).
"""

from .accounts import accounts_upsert
from .dirty_days import days_lock, days_mark_dirty
from .end_users import end_user_cache, end_users_upsert
from .events import events_insert
from .features import (
    feature_cache,
    feature_ids_existing,
    feature_ref_error,
    features_resolve,
    features_resolve_cached,
)

__all__ = [
    "accounts_upsert",
    "days_lock",
    "days_mark_dirty",
    "end_user_cache",
    "end_users_upsert",
    "events_insert",
    "feature_cache",
    "feature_ids_existing",
    "feature_ref_error",
    "features_resolve",
    "features_resolve_cached",
]
