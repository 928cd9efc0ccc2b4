"""PostgreSQL timestamps read through psycopg's C loader.

Django's loader for `timestamptz` (`BaseTzLoader`) subclasses psycopg's Python class, which
keeps psycopg from swapping in its C implementation: every value is parsed in Python, ~7 µs
more each (the largest account's API answer reads 1,300 last-seen times). With USE_TZ and
the connection in UTC, Django sets the session's TimeZone to UTC and the C loader returns
the same aware datetimes in `datetime.UTC`. `fast_timestamps_install` registers it on each
new connection, wrapped in a class that carries the `timezone` Django compares when it
opens a cursor (a different one would make Django register its own loader again)."""

from datetime import UTC
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

_TIMESTAMPTZ = "timestamptz"


def _c_loader() -> Any:
    """psycopg's own timestamptz loader, from its global adapters (Django registers its loader
    on its copies of them only): the C one when psycopg has its C build, else its Python one."""
    from psycopg import adapters, postgres, pq

    return adapters.get_loader(postgres.types[_TIMESTAMPTZ].oid, pq.Format.TEXT)


def _fast_loader() -> type:
    from psycopg.adapt import Loader

    inner = _c_loader()

    class UtcTimestamptzLoader(Loader):
        timezone = UTC

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._inner = inner(oid, context)
            # The inner loader's bound method on the instance, which psycopg looks up: it then
            # calls the C code for each value, with no Python frame of this class between.
            self.load = self._inner.load  # type: ignore[method-assign]

        def load(self, data: Any) -> Any:
            return self._inner.load(data)

    return UtcTimestamptzLoader


_loader: type | None = None


def fast_timestamps_install(sender: Any, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    """`connection_created` receiver: the C loader on a PostgreSQL connection in UTC."""
    global _loader
    if connection.vendor != "postgresql" or connection.timezone != UTC:
        return
    if _loader is None:
        _loader = _fast_loader()
    connection.connection.adapters.register_loader(_TIMESTAMPTZ, _loader)
