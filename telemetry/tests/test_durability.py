"""Queue mode answers 202 only into a Redis that persists (AOF), checked on redis-servers of
the test's own (the shared test Redis keeps no AOF and must not be reconfigured)."""

import logging
import time
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from core.testing_servers import RedisServer
from telemetry.services import durability
from telemetry.tests.helpers import BATCH, TRACK, event, events, post, stored

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def persistent_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("aof"), aof=True, appendfsync="everysec").start()
    yield server
    server.stop(save=False)


@pytest.fixture(scope="module")
def volatile_redis(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("volatile"), aof=False).start()
    yield server
    server.stop(save=False)


@pytest.fixture
def queue_on(settings):
    def use(server):
        server.client().flushdb()
        settings.REDIS_URL = server.url()
        settings.INGEST_MODE = "queue"
        settings.INGEST_ALLOW_VOLATILE_REDIS = False
        return server.client()

    return use


def _info_calls(client) -> int:
    return client.info("commandstats").get("cmdstat_info", {}).get("calls", 0)


def test_persistence_is_read_from_info(persistent_redis, volatile_redis):
    aof = durability.redis_persistence(persistent_redis.client())
    assert (aof.aof_enabled, aof.durable, aof.appendfsync) == (True, True, "everysec")
    plain = durability.redis_persistence(volatile_redis.client())
    assert (plain.aof_enabled, plain.durable) == (False, False)
    assert plain.as_dict()["durable"] is False


def test_config_refused_leaves_appendfsync_unknown(persistent_redis):
    """Managed Redis services often forbid CONFIG; INFO alone decides."""
    client = persistent_redis.client()
    client.acl_setuser("noconfig", enabled=True, nopass=True, commands=["+@all", "-config"], keys=["*"])
    try:
        limited = type(client).from_url(persistent_redis.url().replace("redis://", "redis://noconfig@"))
        seen = durability.redis_persistence(limited)
        assert seen.durable and seen.appendfsync is None
    finally:
        client.acl_deluser("noconfig")


def test_queue_mode_into_a_persistent_redis_answers_202(queue_on, persistent_redis, key_client, org):
    client = queue_on(persistent_redis)
    assert post(key_client, TRACK, event()).status_code == 202
    assert client.xlen("usage:events") == 1 and stored(org) == 0


def test_queue_mode_into_a_volatile_redis_writes_directly_and_says_so(
    queue_on, volatile_redis, key_client, org, caplog
):
    client = queue_on(volatile_redis)
    with caplog.at_level(logging.ERROR, logger="telemetry.services.durability"):
        track = post(key_client, TRACK, event())
        batch = post(key_client, BATCH, events(5))
    assert track.status_code == 201 and track.json()["id"]
    assert batch.status_code == 200 and batch.json()["accepted"] == 5 and "queued" not in batch.json()
    assert stored(org) == 6 and not client.exists("usage:events")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "queue mode is off" in lines[0] and "INGEST_ALLOW_VOLATILE_REDIS" in lines[0]


def test_a_volatile_redis_allowed_explicitly_is_used(queue_on, volatile_redis, settings, key_client, org):
    client = queue_on(volatile_redis)
    settings.INGEST_ALLOW_VOLATILE_REDIS = True
    assert post(key_client, TRACK, event()).status_code == 202
    assert client.xlen("usage:events") == 1 and stored(org) == 0


def test_persistence_is_checked_once_per_interval_not_per_request(queue_on, persistent_redis, key_client, monkeypatch):
    client = queue_on(persistent_redis)
    before = _info_calls(client)
    for _ in range(5):
        assert post(key_client, TRACK, event()).status_code == 202
    assert _info_calls(client) - before == 2 + 1  # one check (persistence, memory), plus this test's own INFO
    later = SimpleNamespace(monotonic=lambda: time.monotonic() + durability.CHECK_INTERVAL_SECONDS)
    monkeypatch.setattr(durability, "time", later)  # the interval has passed (for this module only)
    assert post(key_client, TRACK, event()).status_code == 202
    assert _info_calls(client) - before == 4 + 2


def test_a_redis_turned_volatile_is_noticed_after_an_error_or_the_interval(queue_on, persistent_redis, key_client, org):
    client = queue_on(persistent_redis)
    assert post(key_client, TRACK, event()).status_code == 202
    client.config_set("appendonly", "no")
    try:
        durability.forget(persistent_redis.url())  # as after a Redis error
        assert post(key_client, TRACK, event()).status_code == 201
    finally:
        client.config_set("appendonly", "yes")
    assert stored(org) == 1  # the direct write; the first event waits in the stream


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-random"])
def test_a_redis_that_evicts_any_key_is_not_durable(queue_on, persistent_redis, key_client, org, policy, caplog):
    """At its maxmemory, a cache-style Redis (AOF or not) drops the stream itself: 202s that
    were never stored. Its events are written directly, as into a Redis without AOF."""
    client = queue_on(persistent_redis)
    client.config_set("maxmemory", "1gb")
    client.config_set("maxmemory-policy", policy)
    try:
        assert durability.redis_persistence(client).evicting_policy == policy
        with caplog.at_level(logging.ERROR, logger="telemetry.services.durability"):
            batch = post(key_client, BATCH, events(5))
        assert batch.status_code == 200 and "queued" not in batch.json()
        assert stored(org) == 5 and not client.exists("usage:events")
        assert f"maxmemory-policy {policy} evicts any key" in caplog.records[0].getMessage()
        # Evicting only keys with a time to live (the cache's) spares the stream.
        client.config_set("maxmemory-policy", "volatile-lru")
        durability.forget(persistent_redis.url())
        assert post(key_client, TRACK, event()).status_code == 202
    finally:
        client.config_set("maxmemory", "0")
        client.config_set("maxmemory-policy", "noeviction")


def test_health_shows_persistence_and_whether_queue_mode_is_active(
    queue_on, persistent_redis, volatile_redis, settings, django_user_model
):
    from conftest import PASSWORD, client_for

    staff = client_for(django_user_model.objects.create_superuser(email="staff@h.example", password=PASSWORD))
    queue_on(persistent_redis)
    check = staff.get("/health/detailed").json()["checks"]["ingest_queue"]
    assert check["status"] == "ok"
    detail = check["detail"]
    assert (detail["mode"], detail["active"], detail["fallback"]) == ("queue", "queue", False)
    assert detail["persistence"] == {
        "aof_enabled": True, "aof_last_write_ok": True, "appendfsync": "everysec", "evicting_policy": None,
        "durable": True,
    }  # fmt: skip

    queue_on(volatile_redis)
    response = staff.get("/health/detailed")
    assert response.status_code == 503
    check = response.json()["checks"]["ingest_queue"]
    assert check["status"] == "error" and "does not persist" in check["detail"]

    settings.INGEST_ALLOW_VOLATILE_REDIS = True
    detail = staff.get("/health/detailed").json()["checks"]["ingest_queue"]["detail"]
    assert detail["active"] == "queue" and detail["volatile_allowed"] is True
    assert detail["persistence"]["durable"] is False


def test_consumer_says_at_start_whether_its_redis_persists(queue_on, volatile_redis, persistent_redis, caplog):
    queue_on(volatile_redis)
    with caplog.at_level(logging.INFO, logger="telemetry.consume_events"):
        call_command("consume_events", "--once", "--block-ms", "10")
    assert any("does not persist" in r.getMessage() for r in caplog.records)
    caplog.clear()
    queue_on(persistent_redis)
    with caplog.at_level(logging.INFO, logger="telemetry.consume_events"):
        call_command("consume_events", "--once", "--block-ms", "10")
    assert any("persists (AOF, appendfsync everysec)" in r.getMessage() for r in caplog.records)
