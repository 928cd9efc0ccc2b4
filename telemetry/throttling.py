"""Per-credential rate limit for the ingestion endpoints (scope "ingest")."""

import logging
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from rest_framework.throttling import BaseThrottle

from tenants.authentication import ApiKeyPrincipal

from .services.stream import redis_client

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# After the counter's store failed, requests pass uncounted for this long (per store).
RETRY_AFTER_SECONDS = 5.0
_down_until: dict[str, float] = {}


def _parse_rate(rate: str) -> tuple[int, int]:
    count, period = rate.split("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


def _window_count(key: str, period: int) -> int:
    """Add one to the window's counter and return it."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        # One round trip: Django's RedisCache.incr costs two (EXISTS, then INCR), and this
        # runs on every ingestion request.
        # The shared client of the cache's (first, writable) server: RedisCache builds a
        # new client object per call, which costs more than the round trip.
        full_key = cache.make_and_validate_key(key)
        pipe = redis_client(cache._servers[0]).pipeline(transaction=False)
        pipe.incr(full_key)
        # Each window has its own key, so pushing the expiry on at every request is harmless
        # (and, unlike EXPIRE … NX, works before Redis 7).
        pipe.expire(full_key, period + 1)
        return pipe.execute()[0]
    try:
        return cache.incr(key)
    except ValueError:
        # First request of the window (or the key expired): create it; if another request
        # created it in between, count on top of it.
        if cache.add(key, 1, timeout=period + 1):
            return 1
        return cache.incr(key)


class IngestRateThrottle(BaseThrottle):
    """A fixed-window counter per API key (or per person for JWT callers) on the shared
    cache: one atomic INCR per request. DRF's SimpleRateThrottle keeps a list of every
    request time in the cache and rewrites it on each call, which at 100,000 requests a
    minute is a megabyte per request; the fixed window trades exactness at window edges
    (up to 2× the rate across a boundary) for O(1).

    When the counter store is unreachable the request is let through (and logged): an
    ingestion endpoint must not drop events because its rate limiter is down."""

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
        store = str(getattr(caches["default"], "_servers", ["local"])[0])
        if now < _down_until.get(store, 0.0):
            return True
        window = int(now // period)
        try:
            count = _window_count(f"throttle:{self.scope}:{ident}:{window}", period)
        except (RedisError, OSError) as exc:
            # Skip the counter for a while instead of paying a connect timeout per request.
            _down_until[store] = now + RETRY_AFTER_SECONDS
            logger.warning(
                "Ingestion throttle off for %.0f s: its cache is unreachable (%s).", RETRY_AFTER_SECONDS, exc
            )
            return True
        self._wait = (window + 1) * period - now
        return count <= limit

    def wait(self):
        return max(1, round(self._wait))
