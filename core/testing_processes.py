"""The platform's own processes for fault tests: gunicorn and `manage.py` commands against
the servers of `testing_servers`, an HTTP client, and a sender that records which events the
API acknowledged. Plain functions and classes, no fixtures."""

import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid as uuid_lib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .testing_servers import BIN, ROOT, free_port, wait_until


def django_env(workdir: Path, *, database_url: str, redis_url: str = "", **settings: object) -> dict[str, str]:
    """The environment of a web server or command: this checkout's settings with the given
    database and Redis, caches and the filesystem broker under `workdir`, nothing inherited
    that would point elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "INGEST_", "CELERY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "usage_platform.settings",
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
    # Settings refuse to start without one (DEBUG is off); the test run's own, else a fresh one.
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    env.update({key: str(value) for key, value in settings.items()})
    return env


def manage(env: dict, *args: str, timeout: float = 300) -> str:
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


def start_web(env: dict, log_path: Path, *, threads: int = 4) -> tuple[subprocess.Popen, str, Callable[[], bool]]:
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

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        try:
            return http_json("GET", f"{base}/health", timeout=5)[0] == 200
        except OSError:
            return False

    return proc, base, lambda: wait_until(healthy, timeout=90, interval=0.2, what="the web server")


def http_json(
    method: str, url: str, body: object = None, headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, dict[str, str], Any]:
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

    def __init__(self, base: str, key: str, *, batch: int = 20, allowed: tuple[int, ...] = (503,)) -> None:
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
    def in_background(self, pause: float = 0.01) -> Iterator["Sender"]:
        """Keep sending from a thread while the block runs."""

        def loop() -> None:
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
