"""Counters for rate limits on the shared cache: the ingestion throttle, the auth endpoints'
per-address rate and the login failure limits all count here.

On Redis a call is one pipelined round trip on the shared client (Django's `RedisCache.incr`
costs two and builds a new client object per call). When that Redis is unreachable the
functions answer None and the callers let the request through: a rate limiter that is down
must not take the service down with it. The failure is logged once and starts the shared
back-off, so requests do not each wait for a connection timeout.
"""

import math
import time
from abc import ABCMeta, abstractmethod
from typing import Any

import redis
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .redis_backoff import redis_answered, redis_client, redis_failed, redis_resting

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_parse(rate: str) -> tuple[int, int]:
    """DRF's rate notation, "100/min" → (100, 60) (only the period's first letter counts)."""
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def _redis(cache: RedisCache) -> tuple[redis.Redis | None, str]:
    """(shared client, its URL) for a Redis cache that is not resting, else (None, URL)."""
    url: str = cache._servers[0]  # type: ignore[attr-defined]  # set by Django, absent from its stubs
    return (None if redis_resting(url) else redis_client(url)), url


def counters_incr(items: list[tuple[str, int]], *, what: str) -> list[int] | None:
    """Add one to each `(key, ttl_seconds)` counter and push its expiry to `ttl_seconds` from
    now; returns the new values, or None when the cache's Redis is unreachable."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        return [_incr_local(cache, key, ttl) for key, ttl in items]
    client, url = _redis(cache)
    if client is None:
        return None
    pipe = client.pipeline(transaction=False)
    for key, ttl in items:
        full_key = cache.make_and_validate_key(key)
        pipe.incr(full_key)
        # Pushing the expiry on at every hit is harmless (each window has its own key) and,
        # unlike EXPIRE … NX, works before Redis 7.
        pipe.expire(full_key, ttl)
    try:
        replies = pipe.execute()
    except RedisError as exc:
        redis_failed(url, what, exc)
        return None
    redis_answered(url)
    return replies[0::2]


def _incr_local(cache: BaseCache, key: str, ttl: int) -> int:
    try:
        value = cache.incr(key)
    except ValueError:
        # First hit (or the key expired): create it; if another request created it in
        # between, count on top of it.
        if cache.add(key, 1, timeout=ttl):
            return 1
        value = cache.incr(key)
    # The local and file caches' incr re-sets the value with the default timeout.
    cache.touch(key, ttl)
    return value


def counters_get(keys: list[str], *, what: str) -> list[int] | None:
    """The counters' values (0 for a missing one); None when the cache's Redis is unreachable."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        found = cache.get_many(keys)
        return [int(found.get(key) or 0) for key in keys]
    client, url = _redis(cache)
    if client is None:
        return None
    try:
        values = client.mget([cache.make_and_validate_key(key) for key in keys])
    except RedisError as exc:
        redis_failed(url, what, exc)
        return None
    redis_answered(url)
    return [int(value or 0) for value in values]


def counters_delete(keys: list[str]) -> None:
    """Drop the counters (nothing happens while the cache is unreachable)."""
    caches["default"].delete_many(keys)


def sliding_count(current: int, previous: int, elapsed_fraction: float) -> float:
    """Hits in the last period, estimated from two fixed windows: all of the current one and
    the share of the previous one that still lies inside the period (Cloudflare's sliding
    window). Unlike a fixed window it cannot be doubled by hitting both sides of a boundary."""
    return current + previous * (1.0 - elapsed_fraction)


def sliding_wait(current: int, previous: int, elapsed_fraction: float, limit: int, period: int) -> int:
    """Seconds until `sliding_count` drops below `limit` (> 0) if nothing more is counted (0
    when it already is below)."""
    if sliding_count(current, previous, elapsed_fraction) < limit:
        return 0
    if current >= limit:
        # Only after this window ends, once enough of it has slid out of the period.
        until = 2.0 - limit / current
    else:
        until = 1.0 - (limit - current) / previous
    return max(1, math.ceil((until - elapsed_fraction) * period))


class WindowRateThrottle(BaseThrottle, metaclass=ABCMeta):
    """A fixed-window counter per `ident(request)` at `rate()`: one atomic INCR per request.
    DRF's SimpleRateThrottle keeps a list of every request time in the cache and rewrites it
    on each call, which at 100,000 requests a minute is a megabyte per request; the fixed
    window trades exactness at window edges (up to 2× the rate across a boundary) for O(1).
    A request is let through when the counter's Redis is unreachable (`what` is logged)."""

    scope = ""
    what = ""

    @abstractmethod
    def rate(self) -> str | None:
        """DRF's notation ("30/min"); None or empty: no limit."""

    @abstractmethod
    def ident(self, request: Request) -> str | None:
        """Whom the request is counted for; None: not counted."""

    def allow_request(self, request: Request, view: Any) -> bool:
        rate = self.rate()
        if not rate:
            return True
        ident = self.ident(request)
        if ident is None:
            return True
        limit, period = rate_parse(rate)
        now = time.time()
        window = int(now // period)
        counts = counters_incr([(f"throttle:{self.scope}:{ident}:{window}", period + 1)], what=self.what)
        if counts is None:
            return True
        self._wait = (window + 1) * period - now
        return counts[0] <= limit

    def wait(self) -> int:
        return max(1, round(self._wait))
