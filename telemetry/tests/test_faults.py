"""Fault tests on real processes: gunicorn, `manage.py consume_events`, and a redis-server
and PostgreSQL cluster of the test's own on free ports (never the shared services).

Each scenario asserts that the uuids the API acknowledged are exactly the uuids stored (no
loss, no duplicates) and that the consumers carried on without a restart. The processes'
database is a fresh copy of a migrated SQLite file on a SQLite run of the suite, and a
database in a throw-away PostgreSQL cluster on a PostgreSQL run, so the consumers' write
path of each is exercised.
"""

import itertools
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from core.testing_processes import (
    Sender,
    django_env,
    manage,
    organization_with_key,
    start_manage,
    start_web,
)
from core.testing_servers import (
    PostgresCluster,
    PostgresDatabase,
    RedisServer,
    SqliteDatabase,
    kill_process,
    stop_processes,
    wait_until,
)

pytestmark = pytest.mark.faults

STREAM = "usage:events"
GROUP = "ingest"
_names = itertools.count()


@pytest.fixture(scope="session")
def new_database(tmp_path_factory):
    """A factory of fresh, migrated databases for the processes under test."""
    workdir = tmp_path_factory.mktemp("fault-db")
    if django_settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        template = workdir / "template.sqlite3"
        manage(django_env(workdir, database_url=f"sqlite:///{template}"), "migrate", "--noinput", "-v0")
        yield lambda: SqliteDatabase(workdir / f"db{next(_names)}.sqlite3", template)
        return
    cluster = PostgresCluster().start()
    try:
        cluster.execute("CREATE DATABASE template_faults")
        manage(django_env(workdir, database_url=cluster.url("template_faults")), "migrate", "--noinput", "-v0")
        yield lambda: PostgresDatabase(cluster, f"faults{next(_names)}", "template_faults")
    finally:
        cluster.remove()


class Stack:
    """The processes of one scenario. `web()` and `consumer()` start them, `ready()` waits
    until every one started since has booted (they boot in parallel), `close()` stops them
    all by PID."""

    def __init__(self, tmp_path: Path, database, redis: RedisServer):
        self.dir = tmp_path
        self.database = database
        self.redis = redis
        self.processes = []
        self.logs = []
        self._booting = []

    def env(self, **settings):
        queue = {"INGEST_MODE": "queue", "INGEST_STREAM": STREAM, "INGEST_CONSUMER_GROUP": GROUP}
        return django_env(self.dir, database_url=self.database.url, redis_url=self.redis.url(), **{**queue, **settings})

    def _add(self, proc, log):
        self.processes.append(proc)
        self.logs.append(log)

    def web(self, **settings) -> str:
        log = self.dir / f"web{len(self.logs)}.log"
        proc, base, wait = start_web(self.env(**settings), log)
        self._add(proc, log)
        self._booting.append(wait)
        return base

    def consumer(self, name: str, *args: str):
        log = self.dir / f"consumer-{name}.log"
        proc = start_manage(self.env(), log, "consume_events", "--consumer", name, "--block-ms", "200", *args)
        self._add(proc, log)
        # Its first log line comes once it has the group and has checked persistence.
        self._booting.append(lambda: self.wait_log(proc, "the Redis at", what=f"consumer {name} to start"))
        return proc

    def ready(self):
        while self._booting:
            self._booting.pop(0)()

    def wait_log(self, proc, text, *, what="", timeout=90.0):
        def logged():
            if proc.poll() is not None:
                raise AssertionError(f"process exited with {proc.returncode}\n{self.log_of(proc)}")
            return text in self.log_of(proc)

        wait_until(logged, timeout=timeout, interval=0.1, what=what or repr(text))

    def log_of(self, proc) -> str:
        return self.logs[self.processes.index(proc)].read_text(errors="replace")

    def all_logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)

    def wait_stored(self, acked, timeout=30.0):
        """Wait until exactly the acknowledged uuids are stored, each once."""
        expected = set(acked)
        try:
            wait_until(lambda: set(self.database.stored_uuids()) == expected, timeout=timeout, interval=0.2)
        except AssertionError:
            stored = self.database.stored_uuids()
            missing, extra = expected - set(stored), set(stored) - expected
            raise AssertionError(
                f"{len(expected)} acknowledged, {len(stored)} stored: {len(missing)} missing, {len(extra)} "
                f"never acknowledged\n{self.all_logs()}"
            ) from None
        stored = self.database.stored_uuids()
        assert len(stored) == len(set(stored)) == len(acked), "an event was stored (or acknowledged) twice"

    def pending(self) -> int:
        return self.redis.client().xpending(STREAM, GROUP)["pending"]

    def wait_drained(self):
        """Nothing pending, nothing left in the stream (XACK and XDEL follow the commit)."""
        client = self.redis.client()
        wait_until(lambda: self.pending() == 0 and client.xlen(STREAM) == 0, timeout=15, what="the stream to drain")

    def close(self):
        stop_processes(*self.processes)
        self.redis.stop(save=False)


@pytest.fixture
def stack(tmp_path, new_database):
    # Redis's default fsync policy, as docker-compose.yml runs it (see docs/decisions.md).
    redis = RedisServer(tmp_path / "redis", aof=True, appendfsync="everysec").start()
    stack = Stack(tmp_path, new_database(), redis)
    yield stack
    stack.close()


def _assert_alive(stack, *consumers):
    for proc in consumers:
        assert proc.poll() is None, f"consumer exited with {proc.returncode}\n{stack.log_of(proc)}"


def test_persistent_redis_restarted_under_running_consumers_loses_nothing(stack):
    base = stack.web()
    consumers = [stack.consumer("c1"), stack.consumer("c2")]
    stack.ready()
    sender = Sender(base, organization_with_key(base))
    with sender.in_background():
        wait_until(lambda: sender.acked_count() >= 200, timeout=60, what="events acknowledged before the restart")
        queued = sender.statuses[202]
        stack.redis.restart(down_for=1.0)  # meanwhile the endpoint writes directly
        # Then it rests Redis for a few seconds, and queues again: 10 more queued batches.
        wait_until(lambda: sender.statuses[202] >= queued + 10, timeout=60, what="queueing after the restart")
    assert not sender.unexpected, sender.unexpected
    assert sender.statuses[200] > 0  # written directly while Redis was down
    stack.wait_stored(sender.acked)
    _assert_alive(stack, *consumers)
    stack.wait_drained()


def test_redis_restarted_empty_consumers_recreate_the_group_and_carry_on(stack):
    base = stack.web()
    consumers = [stack.consumer("c1"), stack.consumer("c2")]
    stack.ready()
    sender = Sender(base, organization_with_key(base))
    sender.send(10)
    stack.wait_stored(sender.acked)
    stack.wait_drained()
    # The volume is lost too. Nothing acknowledged is waiting in Redis at this point (losing
    # that is the one thing AOF cannot prevent), so every acknowledged event must be stored.
    stack.redis.restart(empty=True)
    restarted = time.monotonic()
    queued_before = sender.statuses[202]
    wait_until(lambda: sender.send(1) and sender.statuses[202] >= queued_before + 10, timeout=30, interval=0.01)
    assert not sender.unexpected, sender.unexpected
    stack.wait_stored(sender.acked, timeout=15)
    assert time.monotonic() - restarted < 20
    _assert_alive(stack, *consumers)
    # Created once at start and once after the restart, by whichever consumer came first.
    assert sum(stack.log_of(proc).count("created group") for proc in consumers) == 2, stack.all_logs()
    groups = stack.redis.client().xinfo_groups(STREAM)
    assert [g["name"] for g in groups] == [GROUP.encode()]
    stack.wait_drained()


def test_consumer_killed_mid_batch_then_redis_restarted_is_reclaimed(stack):
    base = stack.web()
    victim = stack.consumer("victim", "--count", "5", "--min-idle-ms", "600000")
    stack.ready()
    sender = Sender(base, organization_with_key(base))
    sender.send(1)  # creates the feature and touches the key while writes are possible
    stack.wait_stored(sender.acked)
    stack.wait_drained()
    with stack.database.events_locked():
        assert sender.send(6) == [202] * 6
        # The victim reads a batch, then waits for the database: killed mid-batch.
        wait_until(lambda: stack.pending() >= 1, timeout=30, what="the victim to read a batch")
        time.sleep(0.3)
        taken = stack.pending()
        kill_process(victim)
        stack.redis.restart()  # persistent: the victim's pending entries survive it
        summary = stack.redis.client().xpending(STREAM, GROUP)
        assert summary["consumers"] == [{"name": b"victim", "pending": taken}]
        assert stack.redis.client().xlen(STREAM) == 6  # the rest still unread
    rescuer = stack.consumer("rescuer", "--min-idle-ms", "500")
    stack.ready()
    stack.wait_stored(sender.acked)
    assert not sender.unexpected, sender.unexpected
    _assert_alive(stack, rescuer)
    assert "reclaimed" in stack.log_of(rescuer), stack.log_of(rescuer)
    stack.wait_drained()


def test_postgres_restarted_mid_run_direct_answers_503_and_the_queue_stores_everything_once(tmp_path):
    cluster = PostgresCluster().start()
    redis = RedisServer(tmp_path / "redis", aof=True).start()
    stack = Stack(tmp_path, PostgresDatabase(cluster, "faults"), redis)
    try:
        manage(stack.env(), "migrate", "--noinput", "-v0")
        direct_base = stack.web(INGEST_MODE="direct")
        # Long process caches: the queue endpoint takes events without the database.
        queue_base = stack.web(API_KEY_CACHE_SECONDS=300, INGEST_FEATURE_CACHE_SECONDS=300)
        consumer = stack.consumer("c1")
        stack.ready()
        key = organization_with_key(direct_base)
        direct, queued = Sender(direct_base, key), Sender(queue_base, key)
        assert set(direct.send(3)) == {200} and set(queued.send(3)) == {202}

        cluster.stop("fast")
        assert direct.send(5) == [503] * 5, direct.unexpected  # each with Retry-After (else `unexpected`)
        assert queued.send(5) == [202] * 5
        stack.wait_log(consumer, "database unavailable", what="the consumer to find the database gone")
        cluster.start()

        assert set(direct.send(3)) == {200} and set(queued.send(3)) == {202}
        assert not direct.unexpected and not queued.unexpected, (direct.unexpected, queued.unexpected)
        stack.wait_stored(direct.acked + queued.acked)
        _assert_alive(stack, consumer)
        assert "database back after" in stack.log_of(consumer)
        stack.wait_drained()
    finally:
        stack.close()
        cluster.remove()


def test_a_database_refusing_writes_leaves_queued_events_pending_not_dead(stack):
    """A read-only database (a standby after a failover, maintenance) is down for writes: the
    consumer waits it out with its entries pending, then stores them. It dead-lettered every
    entry it read meanwhile."""
    if not isinstance(stack.database, PostgresDatabase):
        pytest.skip("a read-only database is PostgreSQL's (default_transaction_read_only)")
    base = stack.web()
    consumer = stack.consumer("c1")
    stack.ready()
    sender = Sender(base, organization_with_key(base))
    sender.send(1)  # the feature and the key's touch, while writes are possible
    stack.wait_stored(sender.acked)

    def read_only(on: bool) -> None:
        name = stack.database.url.rsplit("/", 1)[1]
        setting = "SET default_transaction_read_only = on" if on else "RESET default_transaction_read_only"
        stack.database.cluster.execute(f'ALTER DATABASE "{name}" {setting}')
        # Sessions take a database's settings when they connect: make everyone reconnect.
        stack.database.cluster.execute(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
            "AND pid <> pg_backend_pid()"
        )

    read_only(True)
    try:
        assert sender.send(5) == [202] * 5  # queued: the endpoint writes nothing
        stack.wait_log(consumer, "read-only transaction", what="the consumer to meet the read-only database")
        assert not stack.redis.client().exists(f"{STREAM}:dead")
    finally:
        read_only(False)
    stack.wait_stored(sender.acked)
    assert not sender.unexpected, sender.unexpected
    _assert_alive(stack, consumer)
    stack.wait_drained()
