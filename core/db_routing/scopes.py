"""Read scopes and the router: where each read goes (see the package's docstring), the DRF
mixin and the page/task runner that open scopes, and the middleware that marks a request's
user after it wrote."""

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import DatabaseError, InterfaceError, OperationalError, ProgrammingError, connections
from django.http import HttpRequest, HttpResponse

from .replica import (
    NO_POSITION,
    PRIMARY,
    QUERY_CANCELED,
    RECOVERY_CONFLICT,
    REPLICA,
    SAFE_METHODS,
    logger,
    mark_keys,
    primary_pin,
    replica_answered,
    replica_cannot_read,
    replica_enabled,
    replica_failed,
    replica_has,
    replica_resting,
)

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


_scope: ContextVar[ReadScope | None] = ContextVar("db_read_scope", default=None)


def _decide(scope: ReadScope) -> str:
    """Where a scope reads: the replica when it is configured, up, and has replayed every
    write the scope's organisation and user are marked with; else the primary."""
    if not replica_enabled() or replica_resting():
        return PRIMARY
    try:
        positions = list(cache.get_many(mark_keys(scope.org_id, scope.user_id)).values())
        if positions and (NO_POSITION in positions or not replica_has(max(positions))):
            return PRIMARY
        # Django's per-request health check of a kept connection, done here rather than at the
        # first cursor: a replica that went away since the last request fails now, while the
        # primary can still take the scope, not inside a query.
        replica = connections[REPLICA]
        replica.close_if_health_check_failed()
        replica.ensure_connection()
    except (OperationalError, InterfaceError) as exc:
        replica_failed(exc)
        return PRIMARY
    replica_answered()
    return REPLICA


# --- Scopes -------------------------------------------------------------------------------------

# What the primary is asked to change. Watched in the SQL rather than in the router's
# db_for_write, which Django also asks when a foreign key is merely assigned to an unsaved
# instance, and which raw SQL (the rollups) never asks.
_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "MERGE")


def _note_writes(holder: ReadScope | _Writes) -> Callable[..., Any]:
    """An execute wrapper on the primary's connection: sets `holder.wrote` at the first write."""

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if not holder.wrote and sql.lstrip()[:6].upper().startswith(_WRITE_STATEMENTS):
            holder.wrote = True
        return execute(sql, params, many, context)

    return wrapper


def _watch(scope: ReadScope) -> Callable[..., Any]:
    """An execute wrapper on the replica's connection: remembers a failure that is the
    replica's (connection lost, recovery conflict, a role without SELECT), not a timeout the
    primary would share."""

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        try:
            return execute(sql, params, many, context)
        except (OperationalError, InterfaceError) as exc:
            if getattr(exc.__cause__, "sqlstate", None) != QUERY_CANCELED:
                scope.replica_failure = exc
            raise
        except ProgrammingError as exc:
            if replica_cannot_read(exc):
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
            if scope.replica_failure is None and scope.alias == REPLICA:
                replica_answered(read=True)
            if scope.replica_failure is None or scope.wrote:
                return result
    failure = scope.replica_failure
    if getattr(failure.__cause__, "sqlstate", None) == RECOVERY_CONFLICT:
        logger.info("a replica read was cancelled by a conflict with recovery; read again on the primary")
    else:
        replica_failed(failure)
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
