"""The container health checks (scripts/healthcheck.py) against real processes: a Celery
worker and beat writing their heartbeat files, the web server's /health, a stream consumer
seen by Redis. Each check runs as Docker runs it: a separate `python` process."""

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from core.testing import celery_worker, worker_database_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def healthcheck(kind, *args, **env):
    result = subprocess.run(
        [sys.executable, "scripts/healthcheck.py", kind, *args],
        cwd=ROOT,
        env={**os.environ, **{k: str(v) for k, v in env.items()}},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout.strip() + result.stderr.strip()


def wait_for(condition, process, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        assert process.poll() is None, process.stdout.read().decode()[-3000:] if process.stdout else "exited"
        time.sleep(0.3)
    raise AssertionError("timed out")


def filesystem_broker(tmp_path):
    folder = tmp_path / "broker"
    for name in ("queue", "processed"):
        (folder / name).mkdir(parents=True)
    return {"CELERY_BROKER_DIR": str(folder)}


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_heartbeat_file_and_its_health_check(redis_url, tmp_path):
    beats = tmp_path / "heartbeat"
    with celery_worker(tmp_path, redis_url, HEARTBEAT_DIR=beats) as (worker, _):
        wait_for((beats / "worker").exists, worker)
        assert healthcheck("worker", HEARTBEAT_DIR=beats)[0] == 0
    old = time.time() - 600
    os.utime(beats / "worker", (old, old))
    code, output = healthcheck("worker", HEARTBEAT_DIR=beats)
    # The check runs in a fresh interpreter: on a loaded machine a second or more passes first.
    assert code == 1 and re.search(r"worker heartbeat is 6\d\d s old", output), output
    (beats / "worker").unlink()
    code, output = healthcheck("worker", HEARTBEAT_DIR=beats)
    assert code == 1 and "no heartbeat file" in output


@pytest.mark.django_db(transaction=True)
def test_beat_heartbeat_file_and_its_health_check(tmp_path):
    beats = tmp_path / "heartbeat"
    database_url, _ = worker_database_url(tmp_path)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "CACHE_DIR": str(tmp_path / "cache"),
        "HEARTBEAT_DIR": str(beats),
        **filesystem_broker(tmp_path),
    }
    beat = subprocess.Popen(
        [str(BIN / "celery"), "-A", "usage_platform", "beat", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule"), "--pidfile", ""],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for((beats / "beat").exists, beat)
        first = (beats / "beat").stat().st_mtime
        assert healthcheck("beat", HEARTBEAT_DIR=beats)[0] == 0
        # Beat ticks at least every 5 s (the database scheduler's longest sleep): each tick touches it.
        wait_for(lambda: (beats / "beat").stat().st_mtime > first, beat, timeout=30)
    finally:
        beat.terminate()
        beat.wait(timeout=20)
    code, output = healthcheck("beat", "--max-age", "0", HEARTBEAT_DIR=beats)
    assert code == 1 and "beat heartbeat" in output


def test_web_health_check_asks_the_local_server(live_server):
    port = live_server.url.rsplit(":", 1)[1]
    code, output = healthcheck("web", PORT=port)
    assert code == 0 and "/health answered 200" in output
    code, output = healthcheck("web", PORT=1)
    assert code == 1 and "/health did not answer" in output


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_consumer_health_check_reads_the_consumer_idle_time_from_redis(redis_url, tmp_path):
    database_url, _ = worker_database_url(tmp_path)
    stream = f"test:healthcheck:{uuid.uuid4().hex}"
    env = {
        "REDIS_URL": redis_url,
        "INGEST_MODE": "queue",
        "INGEST_STREAM": stream,
        "INGEST_CONSUMER_GROUP": "ingest",
    }
    consumer = subprocess.Popen(
        [sys.executable, "manage.py", "consume_events", "--block-ms", "200"],
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "DATABASE_URL": database_url,
            "CACHE_DIR": str(tmp_path / "cache"),
            # Queue mode may insist on a Redis with persistence; the shared test Redis has none.
            "INGEST_ALLOW_VOLATILE_REDIS": "true",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: healthcheck("consumer", **env)[0] == 0, consumer)
    finally:
        consumer.terminate()
        consumer.wait(timeout=20)
    time.sleep(1.5)
    code, output = healthcheck("consumer", "--max-age", "1", **env)
    assert code == 1 and "last read the stream" in output
    code, output = healthcheck("consumer", **{**env, "INGEST_STREAM": f"{stream}:missing"})
    assert code == 1 and "cannot read the consumer group" in output
