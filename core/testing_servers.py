"""Throw-away servers for fault tests: redis-server and PostgreSQL (initdb) on free ports in
temporary directories, the databases the processes under test share with the test, and
process helpers. The shared services (127.0.0.1:6379 and :5432) are never touched here:
every process is one this module started, and it is stopped or killed by its PID.
`testing_processes` runs the platform's own processes against them.

Plain functions and classes, no fixtures, so any app's tests can use them.
"""

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid as uuid_lib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import redis

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

_T = TypeVar("_T")


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], _T], *, timeout: float = 10.0, interval: float = 0.05, what: str = "") -> _T:
    """Call `predicate` until it returns something truthy (returned) or `timeout` passes
    (AssertionError naming `what` and the last exception, if any). The predicate may raise
    while the thing is not ready; an AssertionError from it means "give up now"."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}: {last_error!r}")
        time.sleep(interval)


@contextmanager
def gunicorn_serving(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[tuple[int, Path]]:
    """gunicorn serving usage_platform.wsgi on a free loopback port with `args` (e.g. `-c
    usage_platform/gunicorn.conf.py`; the bind is given last, so it wins over a config file's),
    a throw-away SQLite database and no Redis, until the block ends: (port, its log file)."""
    import http.client

    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "CACHE_DIR": str(tmp / "cache"),
        "SECRET_KEY": "gunicorn-test-" + "x" * 40,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "REDIS_URL": "",
        **(env or {}),
    }
    log_path = tmp / "gunicorn.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), *args, "--bind", f"127.0.0.1:{port}", "usage_platform.wsgi"],
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:

            def healthy() -> bool:
                assert proc.poll() is None, log_path.read_text()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/health")
                return conn.getresponse().status == 200

            wait_until(healthy, timeout=60, interval=0.2, what="gunicorn answering /health")
            yield port, log_path
        finally:
            stop_processes(proc, timeout=30)


def stop_processes(*procs: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM to all at once, then SIGKILL to those still running after `timeout` seconds."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_process(proc: subprocess.Popen) -> None:
    """SIGKILL: no clean-up, no signal handler, as a crash."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


# --- Redis ------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own: AOF on (`appendfsync always` by default) or off."""

    def __init__(self, directory: Path, *, aof: bool = True, appendfsync: str = "always") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.aof = aof
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self) -> "redis.Redis":
        # from_url: no built-in retries (the constructor retries for seconds), so a stopped
        # server is seen as stopped at once.
        import redis

        return redis.Redis.from_url(self.url(), socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> "RedisServer":
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes" if self.aof else "no", "--appendfsync", self.appendfsync, "--save", "",
             "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: self.client().ping(), timeout=10, what=f"redis-server on port {self.port}")
        return self

    def stop(self, *, save: bool = True) -> None:
        """SHUTDOWN (the AOF is flushed and kept), or SHUTDOWN NOSAVE."""
        import redis

        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.client().shutdown(nosave=not save)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            kill_process(self.proc)

    def restart(self, *, empty: bool = False, down_for: float = 0.0) -> None:
        """Stop and start again on the same port; `empty` also wipes its directory (the
        AOF with it), as a Redis whose volume was lost."""
        self.stop(save=not empty)
        if empty:
            for path in self.dir.iterdir():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        time.sleep(down_for)
        self.start()

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


# --- PostgreSQL -------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return versions[-1].parent


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class PostgresCluster:
    """A PostgreSQL cluster from initdb in its own temporary directory (not pytest's
    tmp_path: the postgres user must be able to reach it). `remove()` stops it and deletes it.

    `replica_of=primary` makes a streaming standby instead: `pg_basebackup -R` of the running
    primary (initdb's defaults allow replication connections from 127.0.0.1 with trust), which
    `start()` runs as a hot standby on its own port."""

    def __init__(self, *, replica_of: "PostgresCluster | None" = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="up-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.bin = postgres_bin()
        if replica_of is None:
            command = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        else:
            command = [str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(replica_of.port), "-U", "postgres",
                       "-D", str(self.data), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"]  # fmt: skip
        subprocess.run(_as_postgres(command), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                          "-w", "-t", "30", *args]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    def start(self) -> "PostgresCluster":
        self._pg_ctl("start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("stop", "-m", mode)

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def fetch_value(self, sql: str, dbname: str = "postgres") -> Any:
        """The first column of the first row of `sql`."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
            assert row is not None, sql
            return row[0]

    # A standby's side of streaming replication.

    def wait_streaming(self, primary: "PostgresCluster", timeout: float = 60.0) -> None:
        """Until the primary streams WAL to this standby."""
        wait_until(
            lambda: primary.fetch_value("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") > 0,
            timeout=timeout, interval=0.1, what=f"the standby on port {self.port} to stream",
        )  # fmt: skip

    def wait_replayed(self, primary: "PostgresCluster", timeout: float = 60.0) -> None:
        """Until this standby has replayed everything the primary had written when called."""
        target = primary.fetch_value("SELECT pg_current_wal_lsn()::text")
        wait_until(
            lambda: self.fetch_value(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"),
            timeout=timeout, interval=0.05, what=f"the standby to replay up to {target}",
        )  # fmt: skip

    def replay_pause(self) -> None:
        """Stop applying WAL (it is still received): the standby's data stands still, as
        under a long lag, until `replay_resume()`."""
        self.execute("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: self.fetch_value("SELECT pg_get_wal_replay_pause_state()") == "paused",
            timeout=30, interval=0.05, what="replay to pause",
        )  # fmt: skip

    def replay_resume(self) -> None:
        self.execute("SELECT pg_wal_replay_resume()")

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Databases the subprocesses share with the test --------------------------------------


class SqliteDatabase:
    """A migrated SQLite file (a copy of `template`)."""

    def __init__(self, path: Path, template: Path) -> None:
        shutil.copyfile(template, path)
        self.path = path
        self.url = f"sqlite:///{path}"

    def stored_uuids(self) -> list[uuid_lib.UUID]:
        with sqlite3.connect(self.path, timeout=20) as conn:
            return [uuid_lib.UUID(row[0]) for row in conn.execute("SELECT uuid FROM telemetry_usageevent")]

    @contextmanager
    def events_locked(self) -> Iterator[None]:
        """Hold SQLite's write lock: every writer waits (readers go on, WAL)."""
        conn = sqlite3.connect(self.path, timeout=20, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()


class PostgresDatabase:
    """A database in a throw-away cluster: empty, or a copy of `template` (e.g. migrated)."""

    def __init__(self, cluster: PostgresCluster, name: str, template: str | None = None) -> None:
        cluster.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.cluster = cluster
        self.url = cluster.url(name)

    def stored_uuids(self) -> list[uuid_lib.UUID]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return [row[0] for row in conn.execute("SELECT uuid FROM telemetry_usageevent")]

    @contextmanager
    def events_locked(self) -> Iterator[None]:
        """Lock the events table: inserts wait (end users and reads go on)."""
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            conn.execute("LOCK TABLE telemetry_usageevent IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                conn.rollback()
