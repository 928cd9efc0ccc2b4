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

Replica down. A replica that does not connect or answer sends reads to the primary for
`DATABASE_REPLICA_RETRY_SECONDS` before it is tried again, logged once when the outage starts
and once when it ends. A scope whose replica fails half-way, before it wrote anything, runs
again on the primary: no request fails because of the replica.
"""

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

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

T = TypeVar("T")


@dataclass
class ReadScope:
    """One unit of reads (a request, a task run). `alias` is decided at its first read."""

    org_id: int | None = None
    user_id: int | None = None
    alias: str | None = None
    wrote: bool = False
    replica_failure: Exception | None = None


@dataclass
class _Writes:
    wrote: bool = False


@dataclass
class _ReplicaState:
    """Per process: the outage back-off and the highest WAL position the replica had replayed."""

    down_until: float = 0.0
    down_since: float | None = None
    replayed: int = 0


_scope: ContextVar[ReadScope | None] = ContextVar("db_read_scope", default=None)
_state = _ReplicaState()


def replica_enabled() -> bool:
    return settings.DATABASE_READ_REPLICA


def replica_resting() -> bool:
    """Whether reads leave the replica alone for now (it failed a moment ago)."""
    return time.monotonic() < _state.down_until


def replica_outage() -> bool:
    """Whether the replica's last connection or query failed and none has succeeded since."""
    return _state.down_since is not None


def replica_state_reset() -> None:
    """Forget outages and replayed positions (tests: each starts from a fresh process's view)."""
    _state.down_until = 0.0
    _state.down_since = None
    _state.replayed = 0


def _replica_failed(exc: Exception) -> None:
    now = time.monotonic()
    retry = settings.DATABASE_REPLICA_RETRY_SECONDS
    if _state.down_since is None:
        _state.down_since = now
        logger.warning(
            "read replica unreachable, reads go to the primary; not tried again for %g s (%s)",
            retry,
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
        )
    else:
        logger.debug("read replica still unreachable (%s)", exc)
    _state.down_until = now + retry
    try:
        connections[REPLICA].close()  # a broken connection would fail the next try at once
    except DatabaseError:
        pass


def _replica_answered() -> None:
    if _state.down_since is not None:
        logger.warning("read replica reachable again after %.0f s", time.monotonic() - _state.down_since)
        _state.down_since = None
        _state.down_until = 0.0


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


def _mark_keys(org_id: int | None, user_id: int | None) -> list[str]:
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


def _replica_has(position: int) -> bool:
    """Whether the replica has replayed `position` (one query, unless already known)."""
    if position == NO_POSITION:
        return False
    if position <= _state.replayed:
        return True
    replica = connections[REPLICA]
    if replica.vendor != "postgresql":
        return False
    with replica.cursor() as cursor:
        cursor.execute("SELECT pg_last_wal_replay_lsn()::text")
        replayed = cursor.fetchone()[0]
    if replayed is None:  # not a standby: DATABASE_REPLICA_URL names a primary
        return False
    _state.replayed = max(_state.replayed, lsn_number(replayed))
    return position <= _state.replayed


def _decide(scope: ReadScope) -> str:
    """Where a scope reads: the replica when it is configured, up, and has replayed every
    write the scope's organisation and user are marked with; else the primary."""
    if not replica_enabled() or replica_resting():
        return PRIMARY
    try:
        positions = list(cache.get_many(_mark_keys(scope.org_id, scope.user_id)).values())
        if positions and (NO_POSITION in positions or not _replica_has(max(positions))):
            return PRIMARY
        connections[REPLICA].ensure_connection()
    except (OperationalError, InterfaceError) as exc:
        _replica_failed(exc)
        return PRIMARY
    _replica_answered()
    return REPLICA


# --- Scopes -------------------------------------------------------------------------------------

# What the primary is asked to change. Watched in the SQL rather than in the router's
# db_for_write, which Django also asks when a foreign key is merely assigned to an unsaved
# instance, and which raw SQL (the rollups) never asks.
_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "MERGE")


def _note_writes(holder: ReadScope | _Writes) -> Callable:
    """An execute wrapper on the primary's connection: sets `holder.wrote` at the first write."""

    def wrapper(execute, sql, params, many, context):
        if not holder.wrote and sql.lstrip()[:6].upper().startswith(_WRITE_STATEMENTS):
            holder.wrote = True
        return execute(sql, params, many, context)

    return wrapper


def _watch(scope: ReadScope) -> Callable:
    """An execute wrapper on the replica's connection: remembers a failure that is the
    replica's (connection lost, recovery conflict), not a timeout the primary would share."""

    def wrapper(execute, sql, params, many, context):
        try:
            return execute(sql, params, many, context)
        except (OperationalError, InterfaceError) as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                scope.replica_failure = exc
            raise

    return wrapper


@contextmanager
def replica_reads(*, org_id: int | None = None, user_id: int | None = None) -> Iterator[ReadScope]:
    """Reads inside go to the replica when they may (see the module's docstring). Without an
    organisation the scope routes nothing until `replica_reads_bind` names it."""
    scope = ReadScope(org_id=org_id, user_id=user_id)
    token = _scope.set(scope)
    try:
        with ExitStack() as stack:
            if replica_enabled():
                stack.enter_context(connections[REPLICA].execute_wrapper(_watch(scope)))
                stack.enter_context(connections[PRIMARY].execute_wrapper(_note_writes(scope)))
            yield scope
    finally:
        _scope.reset(token)


@contextmanager
def primary_reads() -> Iterator[None]:
    """Every read inside goes to the primary, whatever scope surrounds it."""
    token = _scope.set(None)
    try:
        yield
    finally:
        _scope.reset(token)


def replica_reads_bind(*, org_id: int, user_id: int | None = None) -> None:
    """Name the organisation (and user) of the current scope: its reads may now use the replica."""
    scope = _scope.get()
    if scope is not None and scope.org_id is None:
        scope.org_id, scope.user_id = org_id, user_id


def replica_reads_run(fn: Callable[[], T], *, org_id: int | None = None, user_id: int | None = None) -> T:
    """`fn()` inside `replica_reads`; when the replica failed during it before anything was
    written, `fn()` again on the primary (a failure its answer may already carry, e.g. a 503
    rendered by the API's exception handler, is dropped with it)."""
    if not replica_enabled():
        return fn()
    with replica_reads(org_id=org_id, user_id=user_id) as scope:
        try:
            result = fn()
        except DatabaseError:
            if scope.replica_failure is None or scope.wrote:
                raise
        else:
            if scope.replica_failure is None or scope.wrote:
                return result
    failure = scope.replica_failure
    if getattr(failure.__cause__, "sqlstate", None) == RECOVERY_CONFLICT:
        logger.info("a replica read was cancelled by a conflict with recovery; read again on the primary")
    else:
        _replica_failed(failure)
    with primary_reads():
        return fn()


def _replica_failed_in_scope() -> bool:
    scope = _scope.get()
    return scope is not None and scope.replica_failure is not None and not scope.wrote


def read_alias() -> str:
    """The alias the current scope reads from, for raw SQL (`connections[read_alias()]`)."""
    return ReplicaRouter().db_for_read(None)


class ReplicaRouter:
    """DATABASE_ROUTERS: reads of a bound scope that has not written go where `_decide` says
    (the primary inside a transaction: a transaction reads what it writes); everything else to
    the primary. Objects read from either alias relate freely: both hold the same rows."""

    def db_for_read(self, model: Any, **hints: Any) -> str:
        scope = _scope.get()
        if scope is None or scope.org_id is None or scope.wrote:
            return PRIMARY
        if scope.alias is None:
            scope.alias = _decide(scope)
        if scope.alias == REPLICA and connections[PRIMARY].in_atomic_block:
            return PRIMARY
        return scope.alias

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        if {obj1._state.db, obj2._state.db} <= {PRIMARY, REPLICA}:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool:
        return db == PRIMARY


# --- Where scopes open: API views and the request's own writes ----------------------------------


class ReplicaReadsMixin:
    """For DRF views of figures (before `OrgAPIView` in the bases): GET and HEAD run in a read
    scope bound to `self.org` once `initial` has resolved it; other methods use the primary."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        dispatch = super().dispatch  # type: ignore[misc]
        if request.method not in SAFE_METHODS:
            return dispatch(request, *args, **kwargs)
        return replica_reads_run(lambda: dispatch(request, *args, **kwargs))

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        org = getattr(self, "org", None)
        if org is not None:
            replica_reads_bind(org_id=org.pk, user_id=getattr(request.user, "pk", None))

    def handle_exception(self, exc: Exception) -> HttpResponse:
        # The replica's failure goes up to `replica_reads_run`, which reads again on the
        # primary, instead of becoming a 503 (and a log line) here.
        if isinstance(exc, DatabaseError) and _replica_failed_in_scope():
            raise exc
        return super().handle_exception(exc)  # type: ignore[misc]


class PrimaryPinMiddleware:
    """A request that wrote to the database pins its user's scoped reads to the primary until
    the replica has the write: an admin who changes something and reloads sees the change."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_enabled():
            return self.get_response(request)
        writes = _Writes()
        with connections[PRIMARY].execute_wrapper(_note_writes(writes)):
            response = self.get_response(request)
        if writes.wrote:
            # DRF sets the user it authenticated (JWT) on the Django request too; an API key's
            # principal has no id and nothing to read back.
            user_id = getattr(getattr(request, "user", None), "pk", None)
            if isinstance(user_id, int):
                primary_pin(user_ids=[user_id])
        return response


# --- Health --------------------------------------------------------------------------------------


class ReplicaNotStandby(Exception):
    """DATABASE_REPLICA_URL names a server that is not in recovery (not a standby)."""


def replica_status() -> dict | str:
    """For /health/detailed: whether the replica answers, is a standby, and how far behind
    the primary it is in bytes of WAL and in seconds (0 when it has replayed everything: the
    age of the last replayed transaction only says how long the primary has been idle).
    Raises when the replica is unreachable or not a standby."""
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
    behind = max(0, primary_position() - lsn_number(replayed))
    lag = 0.0 if behind == 0 else round(since_last or 0.0, 3)
    return {"reads": reads, "lag_seconds": lag, "bytes_behind": behind, "replayed_lsn": replayed}
