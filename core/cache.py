"""The production cache: Django's Redis cache, where an unreachable Redis is a miss.

Everything the platform caches (dashboard figures, their rollup generation, the insights
narrative, rate-limit counters) can be recomputed or done without, so a Redis outage must
cost speed, not a 500. A failed call logs once and starts the shared back-off
(`core.redis_backoff`): for the next few seconds every call is a miss without
touching the network, so a page that reads ten cached figures waits for at most one
connection timeout, not ten.
"""

from collections.abc import Iterable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from redis.exceptions import RedisError

from .redis_backoff import redis_answered, redis_failed, redis_resting

_WHAT = "cache (every read misses, figures are computed from the database)"
_MISSED = object()


class RedisCache(DjangoRedisCache):
    """Reads answer the default, writes are dropped (`add`/`touch`/`delete` answer False,
    `set_many` returns every key as not stored) and `incr` raises ValueError as for a
    missing key, while the server (the first, writable one) is unreachable."""

    _servers: list[str]  # set by Django's RedisCache, absent from its stubs

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        url = self._servers[0]
        if redis_resting(url):
            return _MISSED
        try:
            result = getattr(super(), method)(*args, **kwargs)
        except RedisError as exc:
            redis_failed(url, _WHAT, exc)
            return _MISSED
        redis_answered(url)
        return result

    def _or(self, result: Any, missed: Any) -> Any:
        return missed if result is _MISSED else result

    def add(self, key: Any, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._or(self._call("add", key, value, timeout, version), False)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self._or(self._call("get", key, default, version), default)

    def set(self, key: Any, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> None:
        self._call("set", key, value, timeout, version)

    def touch(self, key: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self._or(self._call("touch", key, timeout, version), False)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self._or(self._call("delete", key, version), False)

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        return self._or(self._call("get_many", keys, version), {})

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self._or(self._call("has_key", key, version), False)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        result = self._call("incr", key, delta, version)
        if result is _MISSED:
            raise ValueError(f"Key '{key}' not found (the cache is unreachable).")
        return result

    def set_many(
        self, data: dict[Any, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[Any]:
        return self._or(self._call("set_many", data, timeout, version), list(data))

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        self._call("delete_many", keys, version)

    # Django's RedisCache.clear answers the server's bool; the stubs declare None.
    def clear(self) -> bool:  # type: ignore[override]
        return self._or(self._call("clear"), False)
