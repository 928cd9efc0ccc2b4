"""The rollup's temporary tables: on PostgreSQL one of each per transaction, emptied per day.

A day's rollup stages its groups in temporary tables. PostgreSQL keeps a lock on every
relation a transaction created (the table, its indexes, its TOAST table) until the
transaction ends, dropped or not, in a lock table shared by the whole server and sized by
`max_locks_per_transaction`: a caller rolling many days in one transaction (a test, a
re-roll inside an atomic block) ran it out of slots ("out of shared memory") at ~150 days.
So on PostgreSQL each table is created once per transaction (`ON COMMIT DROP`: nothing
outlives the transaction, so a pooled connection carries nothing to its next client) and
emptied for the next day, which keeps the same relations and locks. SQLite has no such
limit: each day creates and drops its own tables there, as before.
"""

from collections.abc import Sequence
from typing import Any

from django.db import connection


def on_postgres() -> bool:
    """Whether the default connection is PostgreSQL's (the rollup steps' SQL differs there)."""
    return connection.vendor == "postgresql"


def _exists(cursor: Any, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s)", [f"pg_temp.{name}"])
    return cursor.fetchone()[0] is not None


def temp_table_create(cursor: Any, name: str, columns: str) -> None:
    """An empty temporary table `name (columns)`."""
    if on_postgres():
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DROP")
        cursor.execute(f"TRUNCATE {name}")
    else:
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
        cursor.execute(f"CREATE TEMP TABLE {name} ({columns})")


def temp_table_fill(cursor: Any, name: str, query: str, params: Sequence[Any] = ()) -> None:
    """A temporary table `name` holding the rows of `query` (its columns are the query's,
    which must be the same query whenever `name` is filled)."""
    if not on_postgres():
        cursor.execute(f"DROP TABLE IF EXISTS {name}")
        cursor.execute(f"CREATE TEMP TABLE {name} AS {query}", params)
    elif _exists(cursor, name):
        cursor.execute(f"TRUNCATE {name}")
        cursor.execute(f"INSERT INTO {name} {query}", params)
    else:
        cursor.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {query}", params)


def temp_tables_release(cursor: Any, *names: str) -> None:
    """Done with the tables for this day: their rows go (PostgreSQL) or the tables do."""
    if on_postgres():
        cursor.execute(f"TRUNCATE {', '.join(names)}")
    else:
        for name in names:
            cursor.execute(f"DROP TABLE {name}")
