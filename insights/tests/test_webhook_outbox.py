"""Webhook attempts are an outbox: each is a row before it is a message. A broker out of reach
when the digest commits, or a Redis restart that loses the queued message, leaves the attempt
queued, and the beat's resend sends it; a message run twice, or the resend racing a slow
queue, POSTs once; a worker that died during its POST is retried after the lease."""

import json
import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from core.testing import ThrowAwayRedis, celery_broker, free_port, page_client
from insights import tasks, webhooks
from insights.models import WebhookDelivery
from insights.tests.helpers import StubServer

pytestmark = pytest.mark.django_db

RESENT_AFTER = webhooks.RESEND_AFTER + timedelta(seconds=1)


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as stub:
        yield stub


@pytest.fixture
def hook(org, receiver):
    return webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])


def _queued_long_ago(delivery, by=RESENT_AFTER):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - by)


def test_the_broker_down_at_commit_leaves_the_attempt_queued_and_the_resend_delivers_it_once(
    hook, receiver, caplog, django_capture_on_commit_callbacks
):
    # Seen: with the broker out of reach when the digest's transaction committed, the webhook
    # message was never sent and nothing sent it later (the digest had marked it queued).
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"), caplog.at_level(logging.WARNING):
        with django_capture_on_commit_callbacks(execute=True):
            delivery_id = webhooks.webhook_enqueue(hook, "export.daily", {"date": "2026-12-04"})
    assert "the Celery broker is unreachable" in caplog.text
    delivery = WebhookDelivery.objects.get()
    assert delivery.delivery_id == delivery_id and delivery.attempted_at is None and delivery.delivered_at is None
    assert receiver.requests == []

    # Not yet: a queued attempt's message may still be on its way.
    assert tasks.webhook_deliveries_resend() == 0
    _queued_long_ago(delivery)
    assert tasks.webhook_deliveries_resend.apply().get() == 1  # the beat's entry, run eagerly
    assert len(receiver.requests) == 1
    _path, headers, body = receiver.requests[0]
    assert headers["X-Delivery"] == delivery_id and json.loads(body)["data"] == {"date": "2026-12-04"}
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.attempted_at is not None and delivery.status_code == 200
    assert tasks.webhook_deliveries_resend() == 0 and len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_a_redis_restart_that_loses_the_message_is_resent(hook, receiver, tmp_path):
    broker = ThrowAwayRedis(tmp_path)
    try:
        with celery_broker(broker.url):
            with transaction.atomic():
                webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
            import redis

            assert redis.Redis.from_url(broker.url).llen("celery") == 1  # sent, waiting for a worker
            broker.stop()  # no persistence: the message is gone with it
            broker = ThrowAwayRedis(tmp_path, port=broker.port)
            assert redis.Redis.from_url(broker.url).llen("celery") == 0
    finally:
        broker.stop()
    delivery = WebhookDelivery.objects.get()
    assert delivery.attempted_at is None and receiver.requests == []
    _queued_long_ago(delivery)
    assert tasks.webhook_deliveries_resend() == 1
    assert len(receiver.requests) == 1 and WebhookDelivery.objects.get().delivered_at is not None


def test_a_message_run_twice_posts_once(hook, receiver):
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})  # its message never sent here
    delivery = WebhookDelivery.objects.get()
    assert tasks.deliver_webhook(delivery_pk=delivery.pk)["delivered"] is True
    assert tasks.deliver_webhook(delivery_pk=delivery.pk)["delivered"] is False
    assert len(receiver.requests) == 1 and WebhookDelivery.objects.count() == 1


def _claimed_long_ago(delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempted_at=timezone.now() - webhooks.ATTEMPT_LEASE - timedelta(seconds=1)
    )


def test_an_attempt_whose_worker_died_counts_as_failed_and_the_next_is_sent(hook, receiver):
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    delivery = WebhookDelivery.objects.get()
    # Claimed by a worker killed before it recorded an outcome (the task's hard time limit).
    assert webhooks.attempt_claim(delivery.pk) is not None
    assert webhooks.deliveries_resend() == [] and webhooks.attempt_claim(delivery.pk) is None
    _claimed_long_ago(delivery)
    assert tasks.webhook_deliveries_resend() == 1
    first, second = WebhookDelivery.objects.order_by("attempt")
    assert (first.attempt, first.status_code, first.error) == (1, None, webhooks.WORKER_LOST)
    assert (second.attempt, second.status_code) == (2, 200) and second.delivered_at is not None
    assert len(receiver.requests) == 1 and tasks.webhook_deliveries_resend() == 0


def test_a_worker_that_dies_on_the_last_attempt_stops_the_attempts(hook, receiver, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    delivery = WebhookDelivery.objects.get()
    webhooks.attempt_claim(delivery.pk)
    _claimed_long_ago(delivery)
    assert tasks.webhook_deliveries_resend() == 0
    assert WebhookDelivery.objects.get().error == webhooks.WORKER_LOST and receiver.requests == []
    assert webhooks.deliveries_resend() == []


def test_a_worker_that_outlived_its_lease_records_nothing(hook, receiver):
    """Its attempt was taken over (closed as failed, the next one queued): its late answer
    neither overwrites that nor queues a second chain of attempts."""
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    slow = webhooks.attempt_claim(WebhookDelivery.objects.get().pk)
    _claimed_long_ago(slow)
    following = webhooks.attempt_abandon(slow.pk)
    assert following is not None and following.attempt == 2
    assert webhooks.webhook_deliver(slow) is None  # it POSTs, then finds its claim gone
    assert WebhookDelivery.objects.get(pk=slow.pk).error == webhooks.WORKER_LOST
    assert WebhookDelivery.objects.count() == 2


def test_whatever_stops_an_attempt_is_recorded_and_retried(hook, receiver, monkeypatch):
    """The task's soft time limit (a receiver trickling its answer) raised inside the POST:
    recorded as a failed attempt with the next one queued, not left claimed."""
    from celery.exceptions import SoftTimeLimitExceeded

    from insights import outbound

    def stopped(*args, **kwargs):
        raise SoftTimeLimitExceeded("SoftTimeLimitExceeded()")

    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    monkeypatch.setattr(outbound, "http_post_pinned", stopped)
    following = webhooks.webhook_deliver(webhooks.attempt_claim(WebhookDelivery.objects.get().pk))
    first = WebhookDelivery.objects.get(attempt=1)
    assert first.error.startswith("SoftTimeLimitExceeded") and following.attempt == 2


def test_a_backlog_gets_one_more_message_per_resend_interval(hook, receiver):
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    delivery = WebhookDelivery.objects.get()
    _queued_long_ago(delivery)
    assert webhooks.deliveries_resend() == [delivery.pk]
    assert webhooks.deliveries_resend() == []  # sent again just now: waits another interval
    _queued_long_ago(delivery)
    assert webhooks.deliveries_resend() == [delivery.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent connections")
@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_attempt_at_once_one_wins(hook, receiver):
    # Committed for the threads to see; its message, which would run it eagerly, not sent.
    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"), transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    pk = WebhookDelivery.objects.get().pk
    start = threading.Barrier(2)
    won = []

    def claim():
        try:
            start.wait()
            won.append(webhooks.attempt_claim(pk) is not None)
        finally:
            connection.close()

    workers = [threading.Thread(target=claim) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(won) == [False, True]


def test_a_retry_is_queued_as_its_own_row_and_resent_when_its_message_is_lost(settings, org):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(503, {}, 0), (200, {}, 0)]) as receiver:
        hook = webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])
        with transaction.atomic():
            webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
        first = WebhookDelivery.objects.get()
        # The retry's message is sent with a countdown; a broker gone then loses it.
        with celery_broker(f"redis://127.0.0.1:{free_port()}/0"):
            tasks.deliver_webhook(delivery_pk=first.pk)
        failed, retry = WebhookDelivery.objects.order_by("attempt")
        assert (failed.attempt, failed.status_code, failed.error) == (1, 503, "HTTP 503")
        assert failed.next_attempt_at == retry.next_attempt_at and retry.attempted_at is None
        assert retry.delivery_id == failed.delivery_id and retry.attempt == 2
        assert webhooks.deliveries_resend() == []  # due after the back-off, then the grace
        _queued_long_ago(retry)
        assert tasks.webhook_deliveries_resend() == 1
    assert len(receiver.requests) == 2
    assert len({headers["X-Delivery"] for _, headers, _ in receiver.requests}) == 1
    assert WebhookDelivery.objects.get(pk=retry.pk).delivered_at is not None


def test_a_paused_webhook_closes_its_queued_attempt_unsent(hook, receiver):
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    webhooks.webhook_update(hook.organization, hook.id, active=False)
    delivery = WebhookDelivery.objects.get()
    assert tasks.deliver_webhook(delivery_pk=delivery.pk)["delivered"] is False
    delivery.refresh_from_db()
    assert delivery.error == "not sent: the webhook is paused" and delivery.next_attempt_at is None
    _queued_long_ago(delivery)
    assert webhooks.deliveries_resend() == [] and receiver.requests == []


def test_a_message_queued_by_the_release_before_the_outbox_is_delivered(hook, receiver):
    result = tasks.deliver_webhook(
        webhook_id=hook.id, event="export.daily", payload={"x": 1}, attempt=1, delivery_id="d-before"
    )
    assert result["delivered"] is True
    (_path, headers, _body) = receiver.requests[0]
    assert headers["X-Delivery"] == "d-before"
    assert WebhookDelivery.objects.get().delivery_id == "d-before"


def test_the_deliveries_api_and_page_show_a_queued_attempt(hook, admin_client, admin_user):
    with transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    (row,) = admin_client.get(f"/api/v1/org/webhooks/{hook.id}/deliveries").json()["results"]
    assert row["attempted_at"] is None and row["delivered_at"] is None and row["status_code"] is None
    page = page_client(admin_user).get(reverse("webhook-settings:index"))
    assert 'data-testid="delivery-queued">queued<' in page.text


def test_a_message_of_the_release_before_run_again_after_its_attempt_posts_nothing(hook, receiver):
    """That release wrote the attempt's row, without a delivery id, once it had POSTed; its
    worker stopped before acknowledging the message, which then ran on this release."""
    now = timezone.now()
    made = WebhookDelivery.objects.create(
        webhook=hook, event="export.daily", payload={"x": 1}, attempt=1, delivery_id="",
        attempted_at=now, delivered_at=now, status_code=200,
    )  # fmt: skip
    result = tasks.deliver_webhook(
        webhook_id=hook.id, event="export.daily", payload={"x": 1}, attempt=1, delivery_id="d-old"
    )
    assert result["delivered"] is False and receiver.requests == []
    assert list(WebhookDelivery.objects.values_list("pk", "delivery_id")) == [(made.pk, "d-old")]
    # Another event of that release, never made, is still delivered.
    other = tasks.deliver_webhook(webhook_id=hook.id, event="export.daily", payload={"x": 2}, attempt=1)
    assert other["delivered"] is True and len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_the_attempt_after_a_stalled_one_still_waits_its_back_off(hook, receiver, tmp_path):
    import redis

    with celery_broker(f"redis://127.0.0.1:{free_port()}/0"), transaction.atomic():
        webhooks.webhook_enqueue(hook, "export.daily", {"x": 1})
    stalled = webhooks.attempt_claim(WebhookDelivery.objects.get().pk)
    _claimed_long_ago(stalled)
    broker = ThrowAwayRedis(tmp_path)
    try:
        with celery_broker(broker.url):
            sent_at = timezone.now()
            assert tasks.webhook_deliveries_resend() == 1
        (message,) = [json.loads(raw) for raw in redis.Redis.from_url(broker.url).lrange("celery", 0, -1)]
    finally:
        broker.stop()
    following = WebhookDelivery.objects.get(attempt=2)
    assert message["headers"]["kwargsrepr"] == repr({"delivery_pk": following.pk})
    from datetime import datetime

    wait = (datetime.fromisoformat(message["headers"]["eta"]) - sent_at).total_seconds()
    assert webhooks.backoff_seconds(1) - 2 <= wait <= webhooks.backoff_seconds(1) + 2
    assert receiver.requests == []
