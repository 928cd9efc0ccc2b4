"""Planner settings for a stretch of the rollup's statements, or a read's (PostgreSQL only).

Some of a day's rollup statements join rows written moments earlier in the same transaction
(the day's groups in temporary tables without statistics, the day's per-user rows): the
planner cannot estimate them and, left to itself, chose plans that are quadratic or sort
millions of rows on a big day. Those statements run with a few plan types switched off,
inside the rollup's transaction (`SET LOCAL`), and the settings are put back as they were
once the statements are done. After an error nothing is put back: the rollback of the
transaction or savepoint undoes `SET LOCAL`, and a statement run in an aborted transaction
would only hide the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .temp_tables import on_postgres

# The settings a caller may switch off: names are interpolated into SQL, so only these.
_SWITCHES = frozenset(
    {"enable_incremental_sort", "enable_mergejoin", "enable_nestloop", "enable_seqscan", "enable_sort"}
)


@contextmanager
def plans_without(cursor: Any, *switches: str) -> Iterator[None]:
    """The statements of the block planned with `switches` (e.g. "enable_nestloop") off.
    Read a statement's `cursor.rowcount` inside the block: the settings are put back after
    it. A no-op on SQLite."""
    unknown = set(switches) - _SWITCHES
    if unknown:
        raise ValueError(f"Not a planner switch this project turns off: {sorted(unknown)}")
    if not on_postgres():
        yield
        return
    previous = {}
    for name in switches:
        cursor.execute("SELECT current_setting(%s)", [name])
        (previous[name],) = cursor.fetchone()
        cursor.execute(f"SET LOCAL {name} = off")
    yield
    for name, value in previous.items():
        cursor.execute(f"SELECT set_config('{name}', %s, true)", [value])
