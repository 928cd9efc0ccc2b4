"""A step of the rollup run beside the rest of it, on a connection and in a transaction of
its own, so that PostgreSQL works on both at once (a backend runs a statement on one core).

`SideLane.start(step, beside=…)` starts `step(cursor)` in a thread whose Django connection
is its own; `result(cursor)` waits for it and returns its value or raises its exception.
Not beside (SQLite, whose writers take turns; or a caller already inside a transaction,
whose uncommitted rows another connection could not see), `result(cursor)` runs the step
there and then, on the caller's cursor, in the caller's transaction.

A step run beside commits on its own: the caller must hold no lock the step could wait for
while it waits for the step (docs/decisions.md, 2026-12-04 "The event dimensions beside the
rest of the rollup").
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, transaction

T = TypeVar("T")


def _in_own_transaction(step: Callable[[Any], T]) -> T:
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS), connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            return step(cursor)
    finally:
        # The thread's connection ends with it: nothing is left for a pool to hand on.
        connections.close_all()


class SideLane(Generic[T]):
    """`step` running beside the caller (a thread), or to be run inline by `result`."""

    def __init__(self, step: Callable[[Any], T], future: Future[T] | None) -> None:
        self._step = step
        self._future = future

    @classmethod
    def start(cls, step: Callable[[Any], T], *, beside: bool) -> SideLane[T]:
        if not beside:
            return cls(step, None)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-side")
        future = pool.submit(_in_own_transaction, step)
        # The thread ends once the step has: nothing waits for it here, the caller goes on.
        pool.shutdown(wait=False)
        return cls(step, future)

    @property
    def beside(self) -> bool:
        return self._future is not None

    def result(self, cursor: Any) -> T:
        """The step's value: waited for when it runs beside, run on `cursor` otherwise."""
        if self._future is None:
            return self._step(cursor)
        return self._future.result()

    def abandon(self) -> None:
        """Wait for a step running beside to end, whatever its outcome: the caller failed
        and is about to raise its own error."""
        if self._future is not None:
            self._future.exception()
