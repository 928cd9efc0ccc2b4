"""Consumers carry on by themselves when Redis loses the stream or the group (a restart
with no data), and back off briefly, not for half a minute, while a dependency is down."""

import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from telemetry.management.commands import consume_events
from telemetry.services.stream import StreamConsumer
from telemetry.tests.helpers import BATCH, events, post, stored

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def _consumer(client, name="c1"):
    consumer = StreamConsumer(client, consumer=name, block_ms=10, min_idle_ms=60_000)
    consumer.ensure_group()
    return consumer


def _drain(consumer):
    while consumer.run_once(block_ms=10):
        pass
    return consumer


def test_a_stream_deleted_under_the_consumer_is_recreated_with_its_group(queue, settings, key_client, org):
    consumer = _drain(_consumer(queue))
    first = post(key_client, BATCH, events(10)).json()["accepted"]
    _drain(consumer)
    queue.delete(settings.INGEST_STREAM)  # what an empty Redis restart looks like to the consumer
    # The endpoint's XADD recreates the stream, without a group.
    second = sum(post(key_client, BATCH, events(10)).json()["accepted"] for _ in range(3))
    assert queue.xinfo_stream(settings.INGEST_STREAM)["groups"] == 0
    _drain(consumer)
    assert consumer.groups_recreated == 1
    assert stored(org) == first + second == 40  # entries added before the group existed, too
    assert queue.xlen(settings.INGEST_STREAM) == 0


def test_a_destroyed_group_is_recreated_and_unread_entries_are_delivered(queue, settings, key_client, org):
    consumer = _consumer(queue)
    accepted = post(key_client, BATCH, events(10)).json()["accepted"]
    queue.xgroup_destroy(settings.INGEST_STREAM, settings.INGEST_CONSUMER_GROUP)
    _drain(consumer)
    assert consumer.groups_recreated == 1 and stored(org) == accepted


def test_a_missing_group_is_logged_once_per_recreation(queue, settings, caplog):
    consumer = _consumer(queue)
    queue.delete(settings.INGEST_STREAM)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="telemetry.services.stream"):
        _drain(consumer)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("is missing" in m for m in messages) == 1 and sum("created group" in m for m in messages) == 1


def test_backoff_is_short_and_logged_once_per_outage(caplog):
    outage = consume_events.Outage("redis", consume_events.REDIS_RETRY_SECONDS)
    with caplog.at_level(logging.INFO, logger="telemetry.consume_events"):
        delays = [outage.failed(ConnectionError("refused")) for _ in range(8)]
        assert outage.recovered() is True
        assert outage.recovered() is False
    assert delays[0] == 0.1 and max(delays) == 2.0 and sum(delays) < 10
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "unavailable" in lines[0] and "back after" in lines[1]
    assert outage.failed(ConnectionError("again")) == 0.1  # a new outage starts short again
    assert max(consume_events.DB_RETRY_SECONDS) <= 5


def test_consume_events_once_with_redis_down_says_so(settings, db):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    with pytest.raises(CommandError, match="redis unavailable"):
        call_command("consume_events", "--once", "--block-ms", "10")


@pytest.mark.parametrize("option", [("--count", "0"), ("--count", "-5"), ("--block-ms", "-1"), ("--min-idle-ms", "-1")])
def test_consume_events_refuses_values_redis_would_refuse_at_every_read(settings, db, option):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="--count must be at least 1"):
        call_command("consume_events", "--once", *option)
