"""The replica's side of read routing, per process: whether it is configured and resting after
a failure (the back-off, logged once per outage), the WAL positions writes leave as marks and
how far the replica has replayed, and its health. `scopes` decides with these."""

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

# One logger for the package: what an operator filters on.
logger = logging.getLogger("core.db_routing")

PRIMARY = DEFAULT_DB_ALIAS
REPLICA = "replica"
SAFE_METHODS = frozenset({"GET", "HEAD"})
MARK_KEY = "db_routing:written:{kind}:{id}"
# A mark without a WAL position (a database that has none): the primary until it expires.
NO_POSITION = 0
# SQLSTATEs that are not the replica's fault: statement_timeout (the primary would stop the
# same query). A standby's "conflict with recovery" (40001) is, and is retried on the primary.
QUERY_CANCELED = "57014"
RECOVERY_CONFLICT = "40001"
# SQLSTATEs of a replica that connects but cannot read what the primary can: its role lacks
# SELECT (the documented reader role before its GRANTs, or a table a later migration added
# without ALTER DEFAULT PRIVILEGES), or it is not (yet) the primary's schema. The primary is
# asked instead, as for a replica that does not answer.
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_TABLE = "42P01"
REPLICA_CANNOT_READ = frozenset({INSUFFICIENT_PRIVILEGE, UNDEFINED_TABLE})


@dataclass
class ReplicaState:
    """Per process: the outage back-off and the highest WAL position the replica had replayed."""

    down_until: float = 0.0
    down_since: float | None = None
    # The outage is a replica that connects but refuses reads: over once a read succeeds.
    refusing: bool = False
    replayed: int = 0


STATE = ReplicaState()


def replica_enabled() -> bool:
    return settings.DATABASE_READ_REPLICA


def replica_resting() -> bool:
    """Whether reads leave the replica alone for now (it failed a moment ago)."""
    return time.monotonic() < STATE.down_until


def replica_outage() -> bool:
    """Whether the replica's last connection or query failed and none has succeeded since."""
    return STATE.down_since is not None


def replica_state_reset() -> None:
    """Forget outages and replayed positions (tests: each starts from a fresh process's view)."""
    STATE.down_until = 0.0
    STATE.down_since = None
    STATE.refusing = False
    STATE.replayed = 0


def replica_cannot_read(exc: BaseException) -> bool:
    """Whether a failed query is the replica's role or schema refusing a read the primary
    would answer (see REPLICA_CANNOT_READ)."""
    return getattr(exc.__cause__, "sqlstate", None) in REPLICA_CANNOT_READ


def replica_failed(exc: Exception) -> None:
    now = time.monotonic()
    retry = settings.DATABASE_REPLICA_RETRY_SECONDS
    STATE.refusing = replica_cannot_read(exc)
    what = "refuses reads" if STATE.refusing else "unreachable"
    if STATE.down_since is None:
        STATE.down_since = now
        logger.warning(
            "read replica %s, reads go to the primary; not tried again for %g s (%s)",
            what,
            retry,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
    else:
        logger.debug("read replica still %s (%s)", what, exc)
    STATE.down_until = now + retry
    try:
        connections[REPLICA].close()  # a broken connection would fail the next try at once
    except DatabaseError:
        pass


def replica_answered(*, read: bool = False) -> None:
    """The replica connected (`read`: and answered a scope's reads): an outage is over, unless
    it is one of refused reads and this was only a connection."""
    if STATE.down_since is None or (STATE.refusing and not read):
        return
    again = "reads again" if STATE.refusing else "reachable again"
    logger.warning("read replica %s after %.0f s", again, time.monotonic() - STATE.down_since)
    STATE.down_since = None
    STATE.down_until = 0.0
    STATE.refusing = False


# --- WAL positions and the marks writes leave -------------------------------------------------


def lsn_number(lsn: str) -> int:
    """PostgreSQL's `X/Y` WAL position as one comparable integer."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def primary_position() -> int:
    """The primary's current WAL position (NO_POSITION on a database without one)."""
    primary = connections[PRIMARY]
    if primary.vendor != "postgresql":
        return NO_POSITION
    with primary.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return lsn_number(cursor.fetchone()[0])


def mark_keys(org_id: int | None, user_id: int | None) -> list[str]:
    keys = [MARK_KEY.format(kind="org", id=org_id)] if org_id is not None else []
    if user_id is not None:
        keys.append(MARK_KEY.format(kind="user", id=user_id))
    return keys


def primary_pin(*, org_ids: Iterable[int] = (), user_ids: Iterable[int] = ()) -> None:
    """Keep these organisations' and users' scoped reads on the primary until the replica has
    replayed what they have written so far (at most DATABASE_REPLICA_PIN_SECONDS). Taken when
    the current transaction commits: a position taken before the commit record could be
    replayed without the write."""
    if not replica_enabled():
        return
    keys = [MARK_KEY.format(kind="org", id=i) for i in org_ids] + [MARK_KEY.format(kind="user", id=i) for i in user_ids]
    if keys:
        transaction.on_commit(lambda: _pin(keys), using=PRIMARY)


def _pin(keys: list[str]) -> None:
    try:
        position = primary_position()
    except DatabaseError as exc:  # the write is done; only its read-back may come from the replica
        logger.warning("could not read the primary's WAL position to pin %s: %s", keys, exc)
        return
    cache.set_many(dict.fromkeys(keys, position), timeout=settings.DATABASE_REPLICA_PIN_SECONDS)


def replica_has(position: int) -> bool:
    """Whether the replica has replayed `position` (one query, unless already known)."""
    if position == NO_POSITION:
        return False
    if position <= STATE.replayed:
        return True
    replica = connections[REPLICA]
    if replica.vendor != "postgresql":
        return False
    with replica.cursor() as cursor:
        cursor.execute("SELECT pg_last_wal_replay_lsn()::text")
        replayed = cursor.fetchone()[0]
    if replayed is None:  # not a standby: DATABASE_REPLICA_URL names a primary
        return False
    STATE.replayed = max(STATE.replayed, lsn_number(replayed))
    return position <= STATE.replayed


# --- Health --------------------------------------------------------------------------------------


class ReplicaNotStandby(Exception):
    """DATABASE_REPLICA_URL names a server that is not in recovery (not a standby)."""


class ReplicaCannotRead(Exception):
    """The replica's role may not SELECT from some of the schema's tables."""


# The tables and views of the connection's schema its role may not read. Partitions are left
# out: a query through the partitioned table checks the partitioned table's privileges only.
_UNREADABLE = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
      AND NOT has_table_privilege(c.oid, 'SELECT')
    ORDER BY c.relname
"""


def replica_status() -> dict | str:
    """For /health/detailed: whether the replica answers, is a standby, and how far behind
    the primary it is in bytes of WAL and in seconds (0 when it has replayed everything: the
    age of the last replayed transaction only says how long the primary has been idle).
    Raises when the replica is unreachable, not a standby, or its role may not read every
    table (a connection alone would pass where each figure read fails)."""
    if not replica_enabled():
        return "not configured"
    replica = connections[REPLICA]
    reads = "primary (replica resting after a failure)" if replica_resting() else "replica"
    if replica.vendor != "postgresql":
        with replica.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"reads": reads, "lag_seconds": None, "bytes_behind": None}
    with replica.cursor() as cursor:
        cursor.execute(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
            " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float"
        )
        in_recovery, replayed, since_last = cursor.fetchone()
        if not in_recovery or replayed is None:
            raise ReplicaNotStandby("DATABASE_REPLICA_URL names a server that is not a standby (not in recovery)")
        cursor.execute(_UNREADABLE)
        unreadable = [row[0] for row in cursor.fetchall()]
        if unreadable:
            shown = ", ".join(unreadable[:5]) + (f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else "")
            raise ReplicaCannotRead(
                f"the replica's role may not SELECT from {len(unreadable)} table(s): {shown}; their reads go to"
                " the primary (GRANT SELECT ON ALL TABLES IN SCHEMA public TO the role, on the primary:"
                " docs/scaling.md)"
            )
        # And one real read of a table, as every figure read makes (a connection alone passes).
        cursor.execute("SELECT 1 FROM django_migrations LIMIT 1")
    behind = max(0, primary_position() - lsn_number(replayed))
    lag = 0.0 if behind == 0 else round(since_last or 0.0, 3)
    return {"reads": reads, "lag_seconds": lag, "bytes_behind": behind, "replayed_lsn": replayed}
