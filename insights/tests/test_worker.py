"""Webhook retries with real back-off: a Celery worker process on the Redis broker delivers
to a receiver on localhost that fails twice."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery import Celery
from django.db import connection

from insights import services
from insights.models import WebhookDelivery
from insights.tests.helpers import StubServer
from usage_platform.celery import app

ROOT = Path(__file__).resolve().parents[2]


def worker_database_url(tmp_path):
    """PostgreSQL: the test database itself. SQLite (in-memory in tests): a file copy."""
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


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_retries_with_backoff_through_redis(org, redis_url, tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    app.conf.task_always_eager = False
    with StubServer([(500, {}, 0), (502, {}, 0), (200, {"ok": True}, 0)]) as receiver:
        webhook = services.webhook_create(org, url=f"{receiver.url}/in", events=["anomaly.created"])
        database_url, sqlite_path = worker_database_url(tmp_path)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": redis_url,
            "REDIS_URL": "",
            "CACHE_DIR": str(tmp_path / "cache"),
            "WEBHOOK_ALLOW_PRIVATE": "true",
            "WEBHOOK_BACKOFF_SECONDS": "1",
            "WEBHOOK_MAX_ATTEMPTS": "5",
        }
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "celery"), "-A", "usage_platform", "worker", "-P", "solo",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            producer = Celery("test-producer", broker=redis_url)
            producer.send_task(
                "insights.deliver_webhook",
                kwargs={
                    "webhook_id": webhook.id,
                    "event": "anomaly.created",
                    "payload": {"n": 1},
                    "delivery_id": "d-1",
                },
            )
            deadline = time.monotonic() + 90
            arrivals = []
            while time.monotonic() < deadline and len(receiver.requests) < 3:
                assert worker.poll() is None, worker.stdout.read().decode()[-3000:]
                if len(receiver.requests) > len(arrivals):
                    arrivals.append(time.monotonic())
                time.sleep(0.05)
            assert len(receiver.requests) == 3, "worker did not retry to success"
            arrivals.append(time.monotonic())
            time.sleep(1.0)  # the third attempt's row is written after the response
            assert len(receiver.requests) == 3
        finally:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            app.conf.task_always_eager = True

    # Back-off: ≥ 1 s before the second attempt, ≥ 2 s before the third.
    assert arrivals[1] - arrivals[0] >= 0.9 and arrivals[2] - arrivals[1] >= 1.8
    if sqlite_path is None:
        rows = list(
            WebhookDelivery.objects.filter(webhook=webhook).order_by("attempt").values_list("attempt", "status_code")
        )
    else:
        with sqlite3.connect(sqlite_path) as db:
            rows = db.execute(
                "SELECT attempt, status_code FROM insights_webhookdelivery WHERE webhook_id = ? ORDER BY attempt",
                [webhook.id],
            ).fetchall()
    assert [tuple(r) for r in rows] == [(1, 500), (2, 502), (3, 200)]
