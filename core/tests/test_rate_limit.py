"""Rate-limit counters: the sliding-window estimate and its wait, counting on the local cache
and on the real Redis, and no counting (None) while the cache's Redis is unreachable."""

import logging

import pytest

from core.rate_limit import counters_delete, counters_get, counters_incr, sliding_count, sliding_wait


def test_sliding_count_weighs_the_previous_window_by_what_is_left_of_it():
    assert sliding_count(2, 10, 0.0) == 12
    assert sliding_count(2, 10, 0.75) == 4.5
    assert sliding_count(2, 10, 1.0) == 2


@pytest.mark.parametrize(
    "current, previous, elapsed, expected",
    [
        (2, 0, 0.5, 0),  # below the limit
        (0, 10, 0.0, 1),  # exactly at the limit: the first bit of slide lets one through
        (0, 20, 0.0, 30),  # twice the limit in the previous window: half of it must slide out
        (10, 0, 0.0, 60),  # the current window's 10 must start sliding: next window begins
        (20, 0, 0.5, 60),  # half of the next window lets 10 of the 20 go
    ],
)
def test_sliding_wait(current, previous, elapsed, expected):
    assert sliding_wait(current, previous, elapsed, 10, 60) == expected


@pytest.mark.parametrize("current, previous, elapsed", [(10, 0, 0.3), (4, 9, 0.2), (15, 30, 0.9)])
def test_after_the_wait_the_count_is_below_the_limit(current, previous, elapsed):
    period, limit = 60, 10
    wait = sliding_wait(current, previous, elapsed, limit, period)
    later = elapsed + wait / period
    if later < 1:
        assert sliding_count(current, previous, later) < limit + 1e-9
    else:
        assert sliding_count(0, current, later - 1) < limit + 1e-9


def test_counters_on_the_local_cache(db):
    assert counters_incr([("a", 60), ("b", 60)], what="test") == [1, 1]
    assert counters_incr([("a", 60)], what="test") == [2]
    assert counters_get(["a", "b", "c"], what="test") == [2, 1, 0]
    counters_delete(["a"])
    assert counters_get(["a", "b"], what="test") == [0, 1]


@pytest.mark.redis
def test_counters_on_the_real_redis(settings, redis_url):
    import redis

    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url}}
    assert counters_incr([("a", 60), ("b", 5)], what="test") == [1, 1]
    assert counters_incr([("a", 60)], what="test") == [2]
    assert counters_get(["a", "b", "c"], what="test") == [2, 1, 0]
    client = redis.Redis.from_url(redis_url)
    ttls = sorted(client.ttl(key) for key in client.keys("*"))
    assert 0 < ttls[0] <= 5 and 5 < ttls[1] <= 60
    counters_delete(["a"])
    assert counters_get(["a", "b"], what="test") == [0, 1]


def test_an_unreachable_redis_counts_nothing_and_logs_once(settings, caplog):
    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}}
    caplog.set_level(logging.WARNING)
    assert counters_incr([("a", 60)], what="test counter off") is None
    assert counters_get(["a"], what="test counter off") is None
    counters_delete(["a"])
    assert caplog.text.count("test counter off: Redis unreachable") == 1
