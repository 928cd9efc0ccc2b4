"""core.db_routing's rules one by one: where a read goes in and out of a scope, what a write
and a mark change, what the settings make of DATABASE_REPLICA_URL. The views, tasks and a
real standby are in usage_platform/tests/test_read_replica*.py."""

import logging
import os
import secrets
import socket

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.db import ProgrammingError, connections

from core import db_routing
from core.db_routing import MARK_KEY, NO_POSITION, PRIMARY, REPLICA, ReplicaRouter, lsn_number, replica, replica_reads
from core.testing import settings_load

router = ReplicaRouter()


class _PgError(Exception):
    """What psycopg raises under Django's wrapper: an error with its SQLSTATE."""

    def __init__(self, sqlstate: str, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def read_alias():
    return router.db_for_read(None)


def test_wal_positions_compare_in_wal_order():
    assert lsn_number("0/16B3748") == 0x16B3748
    assert lsn_number("0/FFFFFFFF") < lsn_number("1/0") < lsn_number("1/10") < lsn_number("A/0")


def test_migrations_only_on_the_primary_and_objects_relate_across_the_two():
    assert router.allow_migrate(PRIMARY, "analytics") is True
    assert router.allow_migrate(REPLICA, "analytics") is False
    assert router.db_for_write(None) == PRIMARY


@pytest.mark.django_db(transaction=True, databases=[PRIMARY, REPLICA])
class TestScopes:
    @pytest.fixture(autouse=True)
    def _routing_on(self, settings):
        settings.DATABASE_READ_REPLICA = True

    def test_reads_go_to_the_replica_only_inside_a_bound_scope(self):
        assert read_alias() == PRIMARY
        with replica_reads() as scope:
            assert read_alias() == PRIMARY  # authentication: the organisation is not known yet
            db_routing.replica_reads_bind(org_id=1, user_id=2)
            assert read_alias() == REPLICA
            assert (scope.org_id, scope.user_id) == (1, 2)
            with db_routing.primary_reads():
                assert read_alias() == PRIMARY
        assert read_alias() == PRIMARY

    def test_routing_off_leaves_every_read_on_the_primary(self, settings):
        settings.DATABASE_READ_REPLICA = False
        with replica_reads(org_id=1):
            assert read_alias() == PRIMARY
        assert db_routing.replica_reads_run(read_alias, org_id=1) == PRIMARY

    def test_a_transaction_and_a_write_bring_reads_back_to_the_primary(self):
        from django.db import transaction

        with replica_reads(org_id=1) as scope:
            assert read_alias() == REPLICA
            with transaction.atomic():
                assert read_alias() == PRIMARY  # a transaction reads what it writes
            with connections[PRIMARY].cursor() as cursor:
                cursor.execute("SELECT 1")
                assert not scope.wrote
                cursor.execute("UPDATE django_content_type SET model = model WHERE id = -1")
            assert scope.wrote and read_alias() == PRIMARY

    def test_a_mark_without_a_wal_position_holds_reads_on_the_primary_until_it_expires(self):
        cache.set(MARK_KEY.format(kind="user", id=7), NO_POSITION, 60)
        with replica_reads(org_id=1, user_id=7):
            assert read_alias() == PRIMARY
        with replica_reads(org_id=1, user_id=8):  # another user of the organisation
            assert read_alias() == REPLICA
        cache.delete(MARK_KEY.format(kind="user", id=7))
        with replica_reads(org_id=1, user_id=7):
            assert read_alias() == REPLICA

    def test_a_position_the_replica_is_known_to_have_replayed_needs_no_query(self, django_assert_num_queries):
        replica.STATE.replayed = lsn_number("5/0")
        cache.set(MARK_KEY.format(kind="org", id=3), lsn_number("4/FF"), 60)
        with replica_reads(org_id=3):
            with django_assert_num_queries(0, connection=connections[REPLICA]):
                assert read_alias() == REPLICA
        cache.set(MARK_KEY.format(kind="org", id=3), lsn_number("5/1"), 60)
        with replica_reads(org_id=3):
            # Asked of the replica, which here is the primary (no replay position): not replayed.
            assert read_alias() == PRIMARY

    def test_primary_pin_marks_organisations_and_users_at_the_primarys_position(self):
        db_routing.primary_pin(org_ids=[5], user_ids=[6])
        marks = cache.get_many([MARK_KEY.format(kind="org", id=5), MARK_KEY.format(kind="user", id=6)])
        assert len(marks) == 2
        if connections[PRIMARY].vendor == "postgresql":
            assert NO_POSITION < min(marks.values()) <= max(marks.values()) <= db_routing.primary_position()
        else:  # no WAL position to wait for: the primary until the mark expires
            assert set(marks.values()) == {NO_POSITION}

    @pytest.mark.parametrize(("sqlstate", "retried"), [("42501", True), ("42P01", True), ("42601", False)])
    def test_a_read_the_replica_refuses_runs_again_on_the_primary_logged_once(self, sqlstate, retried, caplog):
        """A role without SELECT (42501) or a schema without the table (42P01) is the replica's
        fault and read again on the primary; a syntax error (42601) would fail there too."""

        def refuse(execute, sql, params, many, context):
            try:
                raise _PgError(sqlstate, "permission denied for table analytics_dailyorgusage")
            except _PgError as exc:
                raise ProgrammingError(str(exc)) from exc

        def read():
            alias = read_alias()
            # Inside the scope's own wrapper, as the server's error reaches it.
            with connections[REPLICA].execute_wrapper(refuse), connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
            return alias

        caplog.set_level(logging.WARNING, logger="core.db_routing")
        if not retried:
            with pytest.raises(ProgrammingError):
                db_routing.replica_reads_run(read, org_id=1)
            assert not db_routing.replica_outage()
            return
        assert db_routing.replica_reads_run(read, org_id=1) == PRIMARY
        assert db_routing.replica_reads_run(read, org_id=1) == PRIMARY  # resting: not asked again
        assert db_routing.replica_outage()
        replica.STATE.down_until = 0.0  # the back-off over: it connects, and still refuses
        assert db_routing.replica_reads_run(read, org_id=1) == PRIMARY
        logged = [r.getMessage() for r in caplog.records if r.name == "core.db_routing"]
        assert len(logged) == 1 and logged[0].startswith("read replica refuses reads, reads go to the primary")
        replica.STATE.down_until = 0.0
        assert db_routing.replica_reads_run(read_alias, org_id=1) == REPLICA  # granted: reads again
        assert not db_routing.replica_outage()
        assert [r.getMessage()[:24] for r in caplog.records if r.name == "core.db_routing"][1:] == [
            "read replica reads again"
        ]

    def test_primary_pin_with_routing_off_marks_nothing(self, settings):
        settings.DATABASE_READ_REPLICA = False
        db_routing.primary_pin(org_ids=[9])
        assert cache.get(MARK_KEY.format(kind="org", id=9)) is None


def _settings_env(**extra):
    return {"SECRET_KEY": secrets.token_urlsafe(50), "DATABASE_REPLICA_URL": "", **extra}


def test_without_a_replica_url_the_alias_is_the_primary_and_nothing_is_routed(monkeypatch):
    loaded = settings_load(monkeypatch, **_settings_env(DATABASE_URL="postgres://app@db.internal:5432/platform"))
    assert loaded.DATABASE_READ_REPLICA is False
    replica = loaded.DATABASES["replica"]
    assert (replica["HOST"], replica["NAME"]) == ("db.internal", "platform")
    assert replica["TEST"] == {"MIRROR": "default"}
    assert loaded.DATABASE_ROUTERS == ["core.db_routing.ReplicaRouter"]


def test_a_replica_url_adds_the_standby_with_a_short_connect_timeout(monkeypatch):
    loaded = settings_load(
        monkeypatch,
        **_settings_env(
            DATABASE_URL="postgres://app@db.internal:5432/platform",
            DATABASE_REPLICA_URL="postgres://reader@standby.internal:5433/platform",
        ),
    )
    assert loaded.DATABASE_READ_REPLICA is True
    replica = loaded.DATABASES["replica"]
    assert (replica["HOST"], replica["PORT"], replica["USER"]) == ("standby.internal", 5433, "reader")
    assert replica["OPTIONS"]["connect_timeout"] == 2 and "jit=off" in replica["OPTIONS"]["options"]
    assert loaded.DATABASES["default"]["OPTIONS"]["connect_timeout"] == 5
    assert replica["TEST"] == {"MIRROR": "default"} and replica["CONN_HEALTH_CHECKS"] is True


def test_kept_connections_detect_a_vanished_server_within_seconds(monkeypatch):
    """TCP keepalives and tcp_user_timeout (milliseconds) on both aliases: the replica's short,
    the primary's inside gunicorn's 30 s; what libpq receives is checked on a real server below."""
    loaded = settings_load(
        monkeypatch,
        **_settings_env(
            DATABASE_URL="postgres://app@db.internal:5432/platform",
            DATABASE_REPLICA_URL="postgres://reader@standby.internal:5433/platform",
        ),
    )
    replica, primary = loaded.DATABASES["replica"]["OPTIONS"], loaded.DATABASES["default"]["OPTIONS"]
    for options in (replica, primary):
        assert options["keepalives"] == 1 and options["keepalives_count"] == 3
    assert replica["keepalives_idle"] + replica["keepalives_interval"] * replica["keepalives_count"] <= 6
    assert replica["tcp_user_timeout"] <= 5_000
    assert primary["keepalives_idle"] + primary["keepalives_interval"] * primary["keepalives_count"] < 30
    assert replica["tcp_user_timeout"] < primary["tcp_user_timeout"] < 30_000


@pytest.mark.django_db
def test_the_keepalive_options_reach_libpq(settings):
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("libpq's options: the PostgreSQL pass")
    connection = connections[PRIMARY]
    connection.ensure_connection()
    parameters = connection.connection.info.get_parameters()
    assert parameters["keepalives"] == "1" and parameters["tcp_user_timeout"] == "15000", parameters
    # And libpq set them on the socket (over TCP; a Unix socket has none).
    if parameters.get("host", "").startswith("/") or not parameters.get("host"):
        return
    with socket.socket(fileno=os.dup(connection.connection.pgconn.socket)) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 15_000


def test_a_replica_needs_postgresql(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="needs PostgreSQL"):
        settings_load(
            monkeypatch,
            **_settings_env(
                DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                DATABASE_REPLICA_URL="postgres://reader@standby.internal:5433/platform",
            ),
        )
