"""Redis on the request path: one shared client per URL, and a back-off once a server fails.

Redis holds only what the platform can do without for a while (caches, rate-limit counters,
the ingestion stream, which falls back to direct writes), so a Redis outage must degrade,
never fail a request. While a server is down, every call to it would wait for a connection
timeout; so after one failed call the request path leaves that server alone for
`REDIS_RETRY_AFTER_SECONDS` (caches miss, throttles count nothing, ingestion writes
directly) and then tries once more. The outage is logged once when it starts and once when
it ends, not once per request.
"""

import logging
import time

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

REDIS_RETRY_AFTER_SECONDS = 5.0
_clients: dict = {}
_down_until: dict = {}
_down_since: dict = {}


def redis_resting(url: str) -> bool:
    """Whether the request path should leave the Redis at `url` alone for now."""
    return time.monotonic() < _down_until.get(url, 0.0)


def redis_failed(url: str, what: str, exc: Exception) -> None:
    """Record a failed call: `url` rests for REDIS_RETRY_AFTER_SECONDS. `what` says what the
    caller does without Redis; it is logged only when this failure starts an outage."""
    now = time.monotonic()
    if url in _down_since:
        logger.debug("%s: Redis still unreachable (%s)", what, exc)
    else:
        _down_since[url] = now
        logger.warning("%s: Redis unreachable, not tried again for %.0f s (%s)", what, REDIS_RETRY_AFTER_SECONDS, exc)
    _down_until[url] = now + REDIS_RETRY_AFTER_SECONDS


def redis_answered(url: str) -> None:
    """Record a successful call: ends an outage of `url` (logged once) if there was one."""
    since = _down_since.pop(url, None)
    if since is not None:
        _down_until.pop(url, None)
        logger.warning("Redis reachable again after %.0f s", time.monotonic() - since)


def redis_outage(url: str) -> bool:
    """Whether the last call to `url` failed and none has succeeded since."""
    return url in _down_since


def redis_client(url: str | None = None) -> redis.Redis:
    """A shared client per URL (redis-py's pool is thread-safe and resets after fork). A
    connection attempt gives up after 0.5 s: Redis answers a live connect in well under a
    millisecond, and a page must not wait seconds for a server that is gone."""
    url = url or settings.REDIS_URL
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=2.0)
        _clients[url] = client
    return client


def redis_ping(url: str, what: str) -> bool:
    """PING `url` unless it is resting; False (and the back-off) when it does not answer."""
    if redis_resting(url):
        return False
    try:
        redis_client(url).ping()
    except redis.RedisError as exc:
        redis_failed(url, what, exc)
        return False
    redis_answered(url)
    return True


def redis_urls() -> list[str]:
    """Every Redis server the web processes use: REDIS_URL, the cache's, Celery's broker."""
    urls = [settings.REDIS_URL]
    cache = settings.CACHES.get("default", {})
    if "redis" in cache.get("BACKEND", "").lower():
        location = cache.get("LOCATION") or ""
        urls.extend(location if isinstance(location, list | tuple) else location.split(","))
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        urls.append(settings.CELERY_BROKER_URL)
    return list(dict.fromkeys(url.strip() for url in urls if url and url.strip()))


def redis_backoff_reset() -> None:
    """Forget every outage and client (tests: a port may be reused by the next server)."""
    _down_until.clear()
    _down_since.clear()
    for client in _clients.values():
        client.close()
    _clients.clear()
