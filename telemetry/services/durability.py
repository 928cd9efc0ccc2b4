"""Queue mode's promise: a 202 means the event survives a restart of any one process
(DESIGN, "Reliability contract (v2)"). A Redis stream survives a restart of Redis only
when Redis persists with AOF: RDB snapshots lose everything written since the last one.

A Redis that evicts any key at its memory limit (`maxmemory` with an `allkeys-*` policy, the
usual setting of a cache) drops the stream itself, AOF or not, without any restart.

So before a process queues, it asks Redis with `INFO persistence` and `INFO memory` (which
managed Redis services allow; many forbid `CONFIG`) and, while Redis would lose what it
holds, writes directly to the database instead, unless `INGEST_ALLOW_VOLATILE_REDIS` accepts
a volatile Redis. The answer is remembered per process for `CHECK_INTERVAL_SECONDS` and forgotten
after any Redis error, so the request path pays one round trip per interval, never one
per request. See docs/decisions.md for why `appendfsync everysec` counts as durable.
"""

import logging
import time
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 30.0
_checked: dict[str, tuple[float, "RedisPersistence"]] = {}


@dataclass(frozen=True)
class RedisPersistence:
    aof_enabled: bool
    # False after a failed write to the AOF (disk full): Redis then refuses writes anyway.
    aof_last_write_ok: bool
    # None when Redis refuses CONFIG GET (managed Redis); INFO does not carry it.
    appendfsync: str | None
    # The `maxmemory-policy` when Redis evicts any key at its `maxmemory` (allkeys-lru, …), the
    # stream included, else None: `noeviction` refuses writes (ingestion then writes
    # directly), `volatile-*` evicts only keys with a time to live, which the stream has not.
    evicting_policy: str | None = None

    @property
    def durable(self) -> bool:
        return self.lost_by is None

    @property
    def lost_by(self) -> str | None:
        """Why Redis would lose what it holds, or None."""
        if not self.aof_enabled:
            return "AOF disabled"
        if not self.aof_last_write_ok:
            return "last AOF write failed"
        if self.evicting_policy:
            return f"maxmemory-policy {self.evicting_policy} evicts any key, the stream too"
        return None

    def as_dict(self) -> dict:
        return {**asdict(self), "durable": self.durable}


def redis_persistence(client: redis.Redis) -> RedisPersistence:
    """What the Redis behind `client` keeps across a restart; raises RedisError when it
    cannot be asked."""
    pipe = client.pipeline(transaction=False)
    pipe.info("persistence")
    pipe.info("memory")
    info, memory = pipe.execute()
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    try:
        fsync = client.config_get("appendfsync").get("appendfsync")
    except redis.ResponseError:
        fsync = None
    if isinstance(fsync, bytes):
        fsync = fsync.decode()
    return RedisPersistence(
        aof_enabled=bool(int(info.get("aof_enabled", 0))),
        aof_last_write_ok=str(info.get("aof_last_write_status", "ok")) == "ok",
        appendfsync=fsync or None,
        evicting_policy=policy if int(memory.get("maxmemory", 0)) and policy.startswith("allkeys-") else None,
    )


def redis_where(url: str) -> str:
    """host:port/db of a Redis URL, without its credentials (for log lines)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


def queue_accepts(url: str, client: redis.Redis) -> bool:
    """Whether requests may queue into the Redis at `url`: it persists, or a volatile Redis
    is explicitly allowed. Raises RedisError when Redis cannot be asked (the caller then
    treats Redis as down)."""
    if settings.INGEST_ALLOW_VOLATILE_REDIS:
        return True
    now = time.monotonic()
    checked = _checked.get(url)
    if checked is None or now >= checked[0]:
        persistence = redis_persistence(client)
        if not persistence.durable:
            logger.error(
                "queue mode is off: the Redis at %s does not persist (%s), so events are written "
                "directly to the database. Turn on appendonly (AOF) with a maxmemory-policy that never "
                "evicts the stream (noeviction or volatile-*), or set INGEST_ALLOW_VOLATILE_REDIS=true "
                "to queue into a Redis that may lose what it holds.",
                redis_where(url),
                persistence.lost_by,
            )
        elif checked is None or not checked[1].durable:
            logger.info(
                "queue mode on: the Redis at %s persists (AOF, appendfsync %s)",
                redis_where(url),
                persistence.appendfsync or "unknown",
            )
        checked = (now + CHECK_INTERVAL_SECONDS, persistence)
        _checked[url] = checked
    return checked[1].durable


def forget(url: str) -> None:
    """Ask again next time: after an error, Redis may come back restarted and configured
    differently."""
    _checked.pop(url, None)


def reset() -> None:
    _checked.clear()


def queue_status(client: redis.Redis) -> dict:
    """For /health/detailed: whether queue mode is really queueing, and why (a fresh check,
    not this process's remembered one)."""
    persistence = redis_persistence(client)
    allowed = settings.INGEST_ALLOW_VOLATILE_REDIS
    active = settings.INGEST_MODE == "queue" and (persistence.durable or allowed)
    return {
        "active": "queue" if active else "direct",
        "fallback": settings.INGEST_MODE == "queue" and not active,
        "persistence": persistence.as_dict(),
        "volatile_allowed": allowed,
    }
