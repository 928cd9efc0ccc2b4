"""The process-local TTL map behind the ingestion hot path's caches."""

import time

from core.local_cache import LocalCache


def test_entries_live_for_their_ttl():
    # Live within a TTL no pause of a busy machine outlasts; gone when a clock past it looks.
    cache = LocalCache(max_entries=10)
    cache.set_many([("a", 1), ("b", 2)], ttl_seconds=60)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, 2, None)
    assert cache.get("a", clock=time.monotonic() + 61) is None  # as seen after the TTL
    cache.set_many([("z", 3)], ttl_seconds=0.05)
    time.sleep(0.1)
    assert cache.get("z") is None and cache.get("a") == 1


def test_a_ttl_of_zero_stores_nothing():
    cache = LocalCache(max_entries=10)
    cache.set_many([("a", 1)], ttl_seconds=0)
    assert cache.get("a") is None and not cache


def test_a_full_cache_starts_over_and_clear_forgets():
    cache = LocalCache(max_entries=3)
    cache.set_many([(i, i) for i in range(3)], ttl_seconds=60)
    cache.set_many([("new", 1)], ttl_seconds=60)
    assert len(cache) == 1 and cache.get(0) is None and cache.get("new") == 1
    cache.clear()
    assert not cache
