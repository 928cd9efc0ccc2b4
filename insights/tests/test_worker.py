"""Webhook retries with real back-off: a Celery worker process on the Redis broker delivers
to a receiver on localhost that fails twice."""

import sqlite3
import time

import pytest
from celery import Celery

from core.testing import celery_worker
from insights import webhooks
from insights.models import WebhookDelivery
from insights.tests.helpers import StubServer
from usage_platform.celery import app


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_retries_with_backoff_through_redis(org, redis_url, tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    app.conf.task_always_eager = False
    with StubServer([(500, {}, 0), (502, {}, 0), (200, {"ok": True}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=f"{receiver.url}/in", events=["anomaly.created"])
        with celery_worker(
            tmp_path,
            redis_url,
            WEBHOOK_ALLOW_PRIVATE="true",
            WEBHOOK_BACKOFF_SECONDS="1",
            WEBHOOK_MAX_ATTEMPTS="5",
        ) as (worker, sqlite_path):
            producer = Celery("test-producer", broker=redis_url, set_as_current=False)
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
