"""Real processes for fault tests: throw-away Redis and PostgreSQL servers on free ports in
temporary directories, the web server and `manage.py` commands running against them, and
a wait helper. The shared services (127.0.0.1:6379 and :5432) are never touched here: every
process is one this module started, and it is stopped or killed by its PID.

Plain functions and classes, no fixtures, so any app's tests can use them.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid as uuid_lib
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""):
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

    def __init__(self, directory: Path, *, aof: bool = True, appendfsync: str = "always"):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.aof = aof
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self):
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
    tmp_path: the postgres user must be able to reach it). `remove()` stops it and deletes it."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="up-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.bin = postgres_bin()
        subprocess.run(
            _as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync"]),
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

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

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# --- Databases the subprocesses share with the test --------------------------------------


class SqliteDatabase:
    """A migrated SQLite file (a copy of `template`)."""

    def __init__(self, path: Path, template: Path):
        shutil.copyfile(template, path)
        self.path = path
        self.url = f"sqlite:///{path}"

    def stored_uuids(self) -> list[uuid_lib.UUID]:
        with sqlite3.connect(self.path, timeout=20) as conn:
            return [uuid_lib.UUID(row[0]) for row in conn.execute("SELECT uuid FROM telemetry_usageevent")]

    @contextmanager
    def events_locked(self):
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

    def __init__(self, cluster: PostgresCluster, name: str, template: str | None = None):
        cluster.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        self.cluster = cluster
        self.url = cluster.url(name)

    def stored_uuids(self) -> list[uuid_lib.UUID]:
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return [row[0] for row in conn.execute("SELECT uuid FROM telemetry_usageevent")]

    @contextmanager
    def events_locked(self):
        """Lock the events table: inserts wait (end users and reads go on)."""
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5) as conn:
            conn.execute("LOCK TABLE telemetry_usageevent IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                conn.rollback()


# --- Django processes -------------------------------------------------------------------


def django_env(workdir: Path, *, database_url: str, redis_url: str = "", **settings) -> dict:
    """The environment of a web server or command: this checkout's settings with the given
    database and Redis, caches and the filesystem broker under `workdir`, nothing inherited
    that would point elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "INGEST_", "CELERY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "usage_platform.settings",
            "SECRET_KEY": "fault-tests-only-" + "x" * 40,
            "HF_HUB_OFFLINE": "1",
            "LOG_LEVEL": "INFO",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CACHE_DIR": str(workdir / "cache"),
            "CELERY_BROKER_DIR": str(workdir / "broker"),
            # Celery tasks a request may send (none on the ingestion path) stay off the Redis under test.
            "CELERY_BROKER_URL": "filesystem://",
        }
    )
    env.update({key: str(value) for key, value in settings.items()})
    return env


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    """Run `manage.py <args>` to completion; returns its output (raises on failure)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def start_manage(env: dict, log_path: Path, *args: str) -> subprocess.Popen:
    """A long-running `manage.py <args>` (e.g. consume_events), output to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def start_web(env: dict, log_path: Path, *, threads: int = 4) -> tuple[subprocess.Popen, str, Callable[[], None]]:
    """gunicorn (one worker, `threads` threads) on a free port; returns (process, base URL,
    a function that waits until `/health` answers), so several processes can boot at once."""
    port = free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "usage_platform.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--threads", str(threads), "--timeout", "60", "--graceful-timeout", "5"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            return http_json("GET", f"{base}/health", timeout=5)[0] == 200
        except OSError:
            return False

    return proc, base, lambda: wait_until(healthy, timeout=90, interval=0.2, what="the web server")


def http_json(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 30):
    """(status, headers, decoded JSON body or None) of one request; HTTP errors are answers too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, response_headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, dict(error.headers), error.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    return status, response_headers, payload


def organization_with_key(base: str, name: str = "Faults") -> str:
    """Register an organisation through the API and create an ingestion key; returns the key."""
    suffix = uuid_lib.uuid4().hex[:8]
    status, _, body = http_json(
        "POST",
        f"{base}/api/v1/auth/register",
        {"email": f"admin-{suffix}@faults.example", "password": "Fault-Tolerant-42", "organization_name": name},
    )
    assert status == 201, body
    token = body["access_token"]
    status, _, body = http_json(
        "POST", f"{base}/api/v1/org/api-keys", {"name": "faults"}, {"Authorization": f"Bearer {token}"}
    )
    assert status == 201, body
    return body["key"]


class Sender:
    """Posts batches of new events (fresh uuids) to one web server and keeps the uuids the
    API acknowledged (2xx, every item accepted). 503 must carry Retry-After; any other
    answer, a transport error included, is listed in `unexpected`."""

    def __init__(self, base: str, key: str, *, batch: int = 20, allowed: tuple[int, ...] = (503,)):
        self.url = f"{base}/api/v1/events/batch"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.batch = batch
        self.allowed = allowed
        self.acked: list[uuid_lib.UUID] = []
        self.statuses: Counter = Counter()
        self.unexpected: list = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def send(self, batches: int = 1) -> list[int]:
        """Send `batches` batches; returns their statuses."""
        return [self._send_one() for _ in range(batches)]

    def _send_one(self) -> int:
        ids = [uuid_lib.uuid4() for _ in range(self.batch)]
        events = [
            {"uuid": str(u), "feature": "faults", "user_id": f"u-{i % 7}", "session_duration": 1.5}
            for i, u in enumerate(ids)
        ]
        try:
            status, headers, body = http_json("POST", self.url, {"events": events}, self.headers, timeout=30)
        except OSError as exc:
            with self._lock:
                self.statuses["transport"] += 1
                self.unexpected.append(("transport", repr(exc)))
            return 0
        with self._lock:
            self.statuses[status] += 1
            if status in (200, 202) and body and body.get("accepted") == len(ids) and not body.get("errors"):
                self.acked.extend(ids)
            elif status == 503 and status in self.allowed and headers.get("Retry-After"):
                pass
            else:
                self.unexpected.append((status, body))
        return status

    @contextmanager
    def in_background(self, pause: float = 0.01):
        """Keep sending from a thread while the block runs."""

        def loop():
            while not self._stop.is_set():
                self._send_one()
                time.sleep(pause)

        thread = threading.Thread(target=loop, daemon=True)
        self._stop.clear()
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(timeout=60)

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)
