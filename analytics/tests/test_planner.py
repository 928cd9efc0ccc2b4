"""The rollup's planner switches: off inside the block, back to what they were after it."""

import pytest
from django.db import DatabaseError, connection, transaction

from analytics.planner import plans_without

pytestmark = pytest.mark.django_db


def _setting(cursor, name):
    cursor.execute("SELECT current_setting(%s)", [name])
    return cursor.fetchone()[0]


def test_only_the_rollups_switches_are_accepted():
    with connection.cursor() as cursor, pytest.raises(ValueError, match="enable_hashjoin"):
        with plans_without(cursor, "enable_hashjoin"):
            pass


def test_switches_are_off_inside_and_put_back_as_they_were():
    if connection.vendor != "postgresql":
        pytest.skip("planner settings are PostgreSQL's")
    with transaction.atomic(), connection.cursor() as cursor:
        # A session (or role) that already runs with sorts off keeps them off after the block.
        cursor.execute("SET LOCAL enable_sort = off")
        with plans_without(cursor, "enable_nestloop", "enable_sort"):
            assert (_setting(cursor, "enable_nestloop"), _setting(cursor, "enable_sort")) == ("off", "off")
        assert (_setting(cursor, "enable_nestloop"), _setting(cursor, "enable_sort")) == ("on", "off")


def test_a_failed_statement_is_the_error_reported():
    """Nothing runs after a failure (it would fail again, "current transaction is aborted",
    and hide the first error); the savepoint's rollback undoes the switches."""
    if connection.vendor != "postgresql":
        pytest.skip("planner settings are PostgreSQL's")
    with connection.cursor() as cursor:
        with pytest.raises(DatabaseError, match="division by zero"), transaction.atomic():
            with plans_without(cursor, "enable_nestloop"):
                cursor.execute("SELECT 1 / 0")
        assert _setting(cursor, "enable_nestloop") == "on"
