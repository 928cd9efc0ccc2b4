"""Test helpers shared by several apps' tests (kept out of conftest.py because they are plain
functions the tests call, not fixtures)."""

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.db.models import Model
from django.test import Client

from core.settings_probe import settings_execute

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowAwayRedis:
    """A redis-server without persistence on a free port (or `port`: a restart), stopped by its PID."""

    def __init__(self, tmp_path: Path, port: int | None = None) -> None:
        import redis

        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
             "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Tasks sent through the broker at `url` (not run eagerly) within the block; the app's
    broker and eager mode put back after it."""
    from usage_platform.celery import app

    def pools_drop() -> None:
        # Built once, for the broker of the first task sent.
        app._pool = None
        app.amqp._producer_pool = None

    broker_url = app.conf.broker_url
    app.conf.task_always_eager = False
    app.conf.broker_url = url
    pools_drop()
    try:
        yield
    finally:
        app.conf.broker_url = broker_url
        pools_drop()
        app.conf.task_always_eager = True


def worker_database_url(tmp_path: Path) -> tuple[str, Path | None]:
    """The database a worker subprocess must use, and the SQLite file to read back (or None):
    the test database itself on PostgreSQL; on SQLite (an in-memory test database) a file copy
    made with SQLite's backup API, so take it after the test's data is written."""
    settings = connection.settings_dict
    if connection.vendor == "postgresql":
        user = settings.get("USER") or "postgres"
        password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
        host, port = settings.get("HOST") or "127.0.0.1", settings.get("PORT") or 5432
        return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}", None
    path = tmp_path / "worker.sqlite3"
    connection.ensure_connection()
    target = sqlite3.connect(path)
    connection.connection.backup(target)
    target.close()
    return f"sqlite:///{path}", path


def in_thread(work: Callable[[], Any]) -> threading.Thread:
    """`work()` started in a thread of its own, with its own database connection (closed at
    the end): a second transaction beside the test's, for tests of locks (PostgreSQL)."""

    def run() -> None:
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def waits_for_held(hold: Callable[[], None], then: Callable[[], None], message: str) -> None:
    """Runs `hold()` in a transaction of its own thread and keeps it open; then `then()` in a
    second thread, which must still be running 0.5 s later (waiting for the first one's
    locks, `message` otherwise); then commits the first and waits for both to end."""
    held, release, done = threading.Event(), threading.Event(), threading.Event()

    def holder() -> None:
        with transaction.atomic():
            hold()
            held.set()
            assert release.wait(10)

    def second() -> None:
        then()
        done.set()

    first = in_thread(holder)
    assert held.wait(10)
    waiting = in_thread(second)
    assert not done.wait(0.5), message
    release.set()
    first.join(10)
    waiting.join(10)
    assert done.is_set()


def page_client(user: Any, **headers: str) -> Client:
    """A Django test client signed in as `user` (a session, as the pages use), sending
    `headers` (e.g. `**{"HX-Request": "true"}`) with every request."""
    client = Client(headers=headers)
    client.force_login(user)
    return client


@contextmanager
def celery_worker(
    tmp_path: Path, broker_url: str, **extra_env: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path | None]]:
    """A real `celery worker` process on `broker_url` against a snapshot of the test database;
    yields (process, sqlite_path). Stops the worker and puts the app back in eager mode."""
    from usage_platform.celery import app

    database_url, sqlite_path = worker_database_url(tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "REDIS_URL": "",
        "CACHE_DIR": str(tmp_path / "cache"),
        **extra_env,
    }
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "usage_platform", "worker", "-P", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield worker, sqlite_path
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        app.conf.task_always_eager = True


# Every variable the settings' secret-key and e-mail logic reads: settings_load sets each one,
# so neither the runner's environment nor a developer's .env (read without overwriting) leaks in.
SETTINGS_PROBE_VARIABLES = ("DEBUG", "SECRET_KEY", "SECRET_KEY_FILE", "JWT_SIGNING_KEY", "EMAIL_URL", "EMAIL_BACKEND")


def settings_load(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """Executes the usage_platform/settings package afresh with `env` (the variables above
    that it does not name are empty) and returns it, to test what the settings make of the
    environment without restarting the test process."""
    for name in SETTINGS_PROBE_VARIABLES:
        monkeypatch.setenv(name, env.pop(name, ""))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return settings_execute("settings_probe")


@contextmanager
def deleted_before_update(model: type[Model], pk: Any) -> Iterator[None]:
    """Delete `model`'s row `pk` just before the next UPDATE of its table runs: how a DELETE
    committed by a concurrent request looks to the request that read the row first."""
    table = model._meta.db_table
    state = {"done": False}

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if not state["done"] and sql.lstrip().upper().startswith("UPDATE") and table in sql:
            state["done"] = True
            model._default_manager.filter(pk=pk).delete()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield
    assert state["done"], f"no UPDATE of {table} ran"


@contextmanager
def queries_by_alias(*aliases: str) -> Iterator[dict[str, list[str]]]:
    """{alias: [SQL, …]}: every statement each database alias ran inside the block (failed ones
    too), recorded on the connection itself, without connecting (a server under test may be
    down) and whatever the router decided."""
    record: dict[str, list[str]] = {alias: [] for alias in aliases}

    def recorder(alias: str) -> Callable[..., Any]:
        def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
            record[alias].append(sql)
            return execute(sql, params, many, context)

        return wrapper

    with ExitStack() as stack:
        for alias in aliases:
            stack.enter_context(connections[alias].execute_wrapper(recorder(alias)))
        yield record
