from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import psycopg
import pytest
from django.db import connection

from core import pg_timestamps

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="a psycopg loader")

MOMENTS = [
    datetime(2026, 12, 3, 16, 30, 13, 18439, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),  # another offset in
    datetime(1, 1, 1, tzinfo=UTC),
]


@postgres_only
@pytest.mark.django_db
def test_timestamps_come_back_equal_and_in_utc_through_the_c_loader():
    with connection.cursor() as cursor:
        cursor.execute("SELECT unnest(%s::timestamptz[])", [MOMENTS])
        read = [row[0] for row in cursor.fetchall()]
        loader = cursor.cursor.adapters.get_loader(1184, 0)
    assert read == MOMENTS
    assert all(value.tzinfo is UTC for value in read)
    # Django did not put its Python loader back on the cursor, and each value is parsed by
    # psycopg's own loader: its C one (psycopg_binary or psycopg_c) when psycopg has it.
    assert loader.__name__ == "UtcTimestamptzLoader"
    parser = type(loader(1184, cursor.cursor).load.__self__).__module__
    assert parser.endswith("._psycopg") if psycopg.pq.__impl__ != "python" else parser == "psycopg.types.datetime"


def test_a_connection_outside_utc_or_not_on_postgresql_keeps_djangos_loader():
    registered = []
    adapters = SimpleNamespace(register_loader=lambda *args: registered.append(args))
    elsewhere = SimpleNamespace(vendor="postgresql", timezone=timezone(timedelta(hours=1)))
    sqlite = SimpleNamespace(vendor="sqlite", timezone=UTC)
    for wrapper in (elsewhere, sqlite):
        wrapper.connection = SimpleNamespace(adapters=adapters)
        pg_timestamps.fast_timestamps_install(sender=None, connection=wrapper)
    assert registered == []
