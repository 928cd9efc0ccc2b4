"""Per-credential rate limit for the ingestion endpoints (scope "ingest")."""

import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from tenants.authentication import ApiKeyPrincipal

from .services.stream import redis_client, redis_failed, redis_resting

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_rate(rate: str) -> tuple[int, int]:
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def _window_count(key: str, period: int) -> int | None:
    """Add one to the window's counter and return it; None when its Redis is unreachable."""
    cache = caches["default"]
    if not isinstance(cache, RedisCache):
        try:
            return cache.incr(key)
        except ValueError:
            # First request of the window (or the key expired): create it; if another
            # request created it in between, count on top of it.
            if cache.add(key, 1, timeout=period + 1):
                return 1
            return cache.incr(key)
    # One round trip on the shared client of the cache's (first, writable) server: Django's
    # RedisCache.incr costs two (EXISTS, then INCR) and builds a new client object per call.
    url = cache._servers[0]
    if redis_resting(url):
        return None
    full_key = cache.make_and_validate_key(key)
    pipe = redis_client(url).pipeline(transaction=False)
    pipe.incr(full_key)
    # Each window has its own key, so pushing the expiry on at every request is harmless
    # (and, unlike EXPIRE … NX, works before Redis 7).
    pipe.expire(full_key, period + 1)
    try:
        return pipe.execute()[0]
    except RedisError as exc:
        redis_failed(url, "ingestion throttle off (events pass uncounted)", exc)
        return None


class IngestRateThrottle(BaseThrottle):
    """A fixed-window counter per API key (or per person for JWT callers) on the shared
    cache: one atomic INCR per request. DRF's SimpleRateThrottle keeps a list of every
    request time in the cache and rewrites it on each call, which at 100,000 requests a
    minute is a megabyte per request; the fixed window trades exactness at window edges
    (up to 2× the rate across a boundary) for O(1).

    When the counter's Redis is unreachable the request is let through: an ingestion
    endpoint must not drop events because its rate limiter is down."""

    scope = "ingest"

    def allow_request(self, request, view):
        user = request.user
        if isinstance(user, ApiKeyPrincipal):
            ident = f"key:{user.api_key.pk}"
        elif user is not None and user.is_authenticated:
            ident = f"user:{user.pk}"
        else:
            return True
        limit, period = _parse_rate(settings.INGEST_THROTTLE_RATE)
        now = time.time()
        window = int(now // period)
        count = _window_count(f"throttle:{self.scope}:{ident}:{window}", period)
        if count is None:
            return True
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self):
        return max(1, round(self._wait))
