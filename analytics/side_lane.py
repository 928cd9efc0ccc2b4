"""A step of the rollup run beside the rest of it, on a connection and in a transaction of
its own, so that PostgreSQL works on both at once (a backend runs a statement on one core).

`SideLane.start(step, beside=…, setup=…)` starts `setup(cursor)` then `step(cursor)` in a
thread whose Django connection is its own (`setup`: the settings of that transaction, which a
step run inline finds set by the caller already); `result(cursor)` waits for it and returns
its value or raises its exception.
Not beside (SQLite, whose writers take turns; or a caller already inside a transaction,
whose uncommitted rows another connection could not see), `result(cursor)` runs the step
there and then, on the caller's cursor, in the caller's transaction.

A step run beside commits on its own, so it must write only what it can replace whole on
its next run. While the caller waits for it, PostgreSQL cannot see that wait: a lock the
step waits for, held by a transaction that waits for the caller, would be a deadlock it
never breaks (e.g. a migration's table lock queued between the two, or a feature's deletion
holding rows of both). So the step waits for no lock longer than `LOCK_TIMEOUT_MS`; then it
gives up, rolled back, and `result` runs it on the caller's cursor instead, where any such
cycle is the caller's own and PostgreSQL's deadlock detector breaks it as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections, transaction

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Longer than any wait of a healthy run (the step's rows are its own, its tables' locks are
# shared), short enough that a cycle through the caller costs seconds, not a stuck roll.
LOCK_TIMEOUT_MS = 5_000
# PostgreSQL's SQLSTATE for lock_timeout (lock_not_available).
_LOCK_NOT_AVAILABLE = "55P03"


def _in_own_transaction(step: Callable[[Any], T], setup: Callable[[Any], None]) -> T:
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS), connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
            setup(cursor)
            return step(cursor)
    finally:
        # The thread's connection ends with it: nothing is left for a pool to hand on.
        connections.close_all()


def _lock_timed_out(error: BaseException) -> bool:
    return isinstance(error, OperationalError) and getattr(error.__cause__, "sqlstate", None) == _LOCK_NOT_AVAILABLE


class SideLane(Generic[T]):
    """`step` running beside the caller (a thread), or to be run inline by `result`."""

    def __init__(self, step: Callable[[Any], T], future: Future[T] | None) -> None:
        self._step = step
        self._future = future

    @classmethod
    def start(cls, step: Callable[[Any], T], *, beside: bool, setup: Callable[[Any], None]) -> SideLane[T]:
        if not beside:
            return cls(step, None)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-side")
        future = pool.submit(_in_own_transaction, step, setup)
        # The thread ends once the step has: nothing waits for it here, the caller goes on.
        pool.shutdown(wait=False)
        return cls(step, future)

    def result(self, cursor: Any) -> T:
        """The step's value: waited for when it runs beside, run on `cursor` otherwise, or
        when it gave up waiting for a lock."""
        if self._future is None:
            return self._step(cursor)
        try:
            return self._future.result()
        except OperationalError as error:
            if not _lock_timed_out(error):
                raise
            logger.warning("rollup: the step beside waited over %d ms for a lock; running it inline", LOCK_TIMEOUT_MS)
            return self._step(cursor)

    def abandon(self) -> None:
        """Wait for a step running beside to end, whatever its outcome: the caller failed
        and is about to raise its own error. Bounded: the step waits for no lock long."""
        if self._future is not None:
            self._future.exception()
