"""The dashboard cache around query functions: per organisation and rollup generation."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet

from ..rollup import generation

_P = ParamSpec("_P")
# Set while a `cached` query runs through `.uncached`: nothing it reads comes from the cache.
_bypass: ContextVar[bool] = ContextVar("analytics_cache_bypass", default=False)
_R = TypeVar("_R")


class CachedQuery(Protocol[_P, _R]):
    """A query function wrapped by `cached`: called as before, `uncached` bypasses the cache."""

    uncached: Callable[_P, _R]

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...


def _key_part(value: object) -> object:
    """A cache-key component: model instances by pk; None entries of dicts dropped, so
    `filters={"feature": None}` and no filters share one key."""
    if isinstance(value, dict):
        return sorted((k, _key_part(v)) for k, v in value.items() if v is not None) or None
    return getattr(value, "pk", value)


@overload
def cached(fn: Callable[_P, _R], *, ttl_seconds: int | None = None) -> CachedQuery[_P, _R]: ...
@overload
def cached(fn: None = None, *, ttl_seconds: int | None = None) -> Callable[[Callable[_P, _R]], CachedQuery[_P, _R]]: ...
def cached(fn: Callable[..., Any] | None = None, *, ttl_seconds: int | None = None) -> Any:
    """Cache a dashboard query per organisation and rollup generation. Every rollup of the
    organisation bumps the generation, so all its cached figures go at once; dashboards are
    as fresh as the last rollup (hourly for today), which is what their rollup-based totals
    show anyway. `ANALYTICS_CACHE_TTL` (seconds, default 300; 0 disables) bounds the rest;
    `ttl_seconds` overrides that bound for results that change only with a rollup and are
    dear to recompute (insights charts, forecasts). `fn.uncached` runs the plain function,
    with every cached read inside it (`cached` queries, `cached_rows`) computed afresh."""
    if fn is None:
        return functools.partial(cached, ttl_seconds=ttl_seconds)

    @functools.wraps(fn)
    def wrapper(org: Any, *args: Any, **kwargs: Any) -> Any:
        named = sorted((k, _key_part(v)) for k, v in kwargs.items() if _key_part(v) is not None)
        parts = repr(([_key_part(a) for a in args], named))
        return through_cache(org, fn.__name__, parts, lambda: fn(org, *args, **kwargs), ttl_seconds)

    @functools.wraps(fn)
    def uncached(*args: Any, **kwargs: Any) -> Any:
        token = _bypass.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _bypass.reset(token)

    query: Any = wrapper
    query.uncached = uncached
    return query


def cached_rows(org: Any, rows: QuerySet[Any]) -> list[Any]:
    """`list(rows)`, cached like `cached` results under the statement's own SQL: reads that
    build the same statement from different arguments (a dashboard ranks a dimension's values
    for its totals, its series and each feature's split) run it once."""
    sql, params = rows.query.sql_with_params()
    return through_cache(org, "rows", repr((sql, params)), lambda: list(rows))


def through_cache(org: Any, name: str, parts: str, compute: Callable[[], Any], ttl_seconds: int | None = None) -> Any:
    """`compute()`, cached under the organisation, its rollup generation, `name` and a digest
    of `parts`; computed afresh with the cache off (`ANALYTICS_CACHE_TTL` 0) or inside an
    `.uncached` call."""
    ttl = settings.ANALYTICS_CACHE_TTL
    if not ttl or _bypass.get():
        return compute()
    digest = hashlib.sha256(parts.encode()).hexdigest()[:32]
    key = f"analytics:q:{org.pk}:{generation(org.pk)}:{name}:{digest}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, ttl_seconds or ttl)
    return value
