"""Reads on a streaming read replica, by context: the primary unless a read scope says otherwise.

`DATABASE_REPLICA_URL` adds a PostgreSQL standby. Reads go to it only inside a *read scope*,
opened by the code that serves figures, never by `.using()` at each query: the analytics and
insights API (`ReplicaReadsMixin`, GET only, CSV exports included), their pages
(`core.pages.org_page(..., replica=True)`), and the detector, narrative and export tasks
(`replica_reads_run`). Outside a scope, and for every write, `ReplicaRouter` answers the
primary; migrations run only there. Authentication reads the primary too: a scope starts
routing once the view knows its organisation (`replica_reads_bind`).

Read your writes. A standby replays the primary's WAL a moment later (milliseconds, seconds
under load), so a read right after a write may not see it. The writes that figures depend on
leave a mark holding the primary's WAL position (LSN) at commit: each rollup marks its
organisations, and a request that wrote marks its user (`PrimaryPinMiddleware`). A scope of a
marked organisation or user reads the replica only once the replica has replayed that
position (`pg_last_wal_replay_lsn()`, asked at most once per scope and remembered per process),
else the primary. The marks live in the shared cache for `DATABASE_REPLICA_PIN_SECONDS`:
 - not in a cookie, because API clients (JWT, curl, SDKs) keep none and Celery tasks have
   no client at all;
 - per organisation as well as per user, because the dashboard cache is per organisation: a
   colleague's page filled from a replica that has not replayed the rollup yet would keep stale
   figures under the rollup's new cache generation;
 - with a position rather than a fixed window, so reads return to the replica as soon as it
   has the write (usually at once) and a lag longer than a guess does not show stale figures;
   the window only bounds how long a replica lagging further is waited for.

Replica down. A replica that does not connect or answer, or that refuses a read the primary
would answer (its role lacks SELECT on a table, or it lacks the table), sends reads to the
primary for `DATABASE_REPLICA_RETRY_SECONDS` before it is tried again, logged once when the
outage starts and once when it ends. A scope whose replica fails half-way, before it wrote
anything, runs again on the primary: no request fails because of the replica.
"""

from .replica import (
    MARK_KEY,
    NO_POSITION,
    PRIMARY,
    REPLICA,
    SAFE_METHODS,
    ReplicaCannotRead,
    ReplicaNotStandby,
    lsn_number,
    primary_pin,
    primary_position,
    replica_enabled,
    replica_failed,
    replica_outage,
    replica_resting,
    replica_state_reset,
    replica_status,
)
from .scopes import (
    PrimaryPinMiddleware,
    ReadScope,
    ReplicaReadsMixin,
    ReplicaRouter,
    primary_reads,
    read_alias,
    replica_reads,
    replica_reads_bind,
    replica_reads_run,
)

__all__ = [
    "MARK_KEY",
    "NO_POSITION",
    "PRIMARY",
    "REPLICA",
    "SAFE_METHODS",
    "PrimaryPinMiddleware",
    "ReadScope",
    "ReplicaCannotRead",
    "ReplicaNotStandby",
    "ReplicaReadsMixin",
    "ReplicaRouter",
    "lsn_number",
    "primary_pin",
    "primary_position",
    "primary_reads",
    "read_alias",
    "replica_enabled",
    "replica_failed",
    "replica_outage",
    "replica_reads",
    "replica_reads_bind",
    "replica_reads_run",
    "replica_resting",
    "replica_state_reset",
    "replica_status",
]
