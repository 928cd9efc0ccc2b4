"""Drain the ingestion stream into the database (queue mode).

    manage.py consume_events [--consumer NAME] [--count 20] [--block-ms 1000]
        [--min-idle-ms 60000] [--once] [--max-batches N]

Run any number of these: they share one consumer group, so each entry goes to one of
them; entries a crashed consumer read but never acknowledged are reclaimed by the others
after `--min-idle-ms`. SIGTERM/SIGINT finish the current batch, acknowledge it and exit 0.

It never needs a restart: while Redis or the database is down it retries within seconds,
and when Redis comes back empty it recreates the stream and the group.
"""

import logging
import os
import signal
import socket
import time

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from telemetry.services import durability
from telemetry.services.stream import StreamConsumer

logger = logging.getLogger("telemetry.consume_events")

PROGRESS_EVERY_SECONDS = 10.0
# Back-off while a dependency is down: (first delay, longest delay) in seconds. Short, so a
# consumer carries on within seconds of Redis or the database coming back; each retry is
# one cheap connection attempt.
REDIS_RETRY_SECONDS = (0.1, 2.0)
DB_RETRY_SECONDS = (0.5, 5.0)
STILL_DOWN_LOG_EVERY_SECONDS = 30.0


class Outage:
    """Back-off and log lines for one dependency that is down: one line when it fails, one
    every STILL_DOWN_LOG_EVERY_SECONDS while it stays down, one when it is back."""

    def __init__(self, what: str, delays: tuple[float, float]):
        self.what = what
        self.first, self.longest = delays
        self.delay = self.first
        self.since = None
        self.logged_at = 0.0

    def failed(self, exc) -> float:
        """Record a failure; returns how long to wait before the next try."""
        now = time.monotonic()
        if self.since is None:
            self.since = self.logged_at = now
            logger.warning("%s unavailable (%s); retrying", self.what, exc)
        elif now - self.logged_at >= STILL_DOWN_LOG_EVERY_SECONDS:
            self.logged_at = now
            logger.warning("%s still unavailable after %.0f s (%s)", self.what, now - self.since, exc)
        delay = self.delay
        self.delay = min(self.delay * 2, self.longest)
        return delay

    def recovered(self) -> bool:
        """Whether it had been down (and is now back)."""
        if self.since is None:
            return False
        logger.info("%s back after %.1f s", self.what, time.monotonic() - self.since)
        self.since = None
        self.delay = self.first
        return True


def log_persistence(client) -> None:
    """Say whether a restart of this Redis would lose what is queued (see durability.py)."""
    where = durability.redis_where(settings.REDIS_URL)
    try:
        persistence = durability.redis_persistence(client)
    except redis.RedisError as exc:
        logger.warning("could not read the persistence of the Redis at %s: %s", where, exc)
        return
    if persistence.durable:
        logger.info("the Redis at %s persists (AOF, appendfsync %s)", where, persistence.appendfsync or "unknown")
    else:
        logger.warning(
            "the Redis at %s does not persist (%s): it may lose the events queued and not yet stored; "
            "web processes write directly unless INGEST_ALLOW_VOLATILE_REDIS=true",
            where,
            persistence.lost_by,
        )


class Command(BaseCommand):
    help = "Consume queued events from the Redis stream and store them (queue mode)."

    def add_arguments(self, parser):
        parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}", help="consumer name")
        parser.add_argument("--count", type=int, default=20, help="stream entries per batch (one entry = one request)")
        parser.add_argument("--block-ms", type=int, default=1000, help="wait this long for new entries")
        parser.add_argument(
            "--min-idle-ms",
            type=int,
            default=settings.INGEST_CLAIM_MIN_IDLE_MS,
            help="reclaim other consumers' entries pending at least this long",
        )
        parser.add_argument("--once", action="store_true", help="one read cycle, then exit")
        parser.add_argument("--max-batches", type=int, default=0, help="exit after this many non-empty batches")

    def handle(self, *args, **opts):
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: queue mode needs Redis.")
        # Redis refuses such values at every read, which the loop would take for Redis being
        # down: "redis unavailable; retrying" forever, nothing consumed.
        if opts["count"] < 1 or opts["block_ms"] < 0 or opts["min_idle_ms"] < 0:
            raise CommandError("--count must be at least 1, --block-ms and --min-idle-ms at least 0.")
        # Its own client: a blocking XREADGROUP must not hit the endpoints' 2 s socket timeout.
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=opts["block_ms"] / 1000 + 5
        )
        consumer = StreamConsumer(
            client,
            consumer=opts["consumer"],
            count=opts["count"],
            block_ms=opts["block_ms"],
            min_idle_ms=opts["min_idle_ms"],
        )
        self.stopping = False
        previous = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._loop(consumer, opts)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write(
            f"consumer {consumer.consumer}: {consumer.entries_done} entries, "
            f"{consumer.events_stored} events stored ({consumer.events_seen - consumer.events_stored} duplicates)"
        )

    def _stop(self, signum, frame):
        logger.info("signal %s: finishing the current batch, then exiting", signum)
        self.stopping = True

    def _loop(self, consumer, opts):
        batches = 0
        started = last_report = time.monotonic()
        reported = 0
        redis_down = Outage("redis", REDIS_RETRY_SECONDS)
        database_down = Outage("database", DB_RETRY_SECONDS)
        group_ready = False
        while not self.stopping:
            if not connection.in_atomic_block:  # (tests run the command inside a transaction)
                # A long-running process must drop connections the server closed or that
                # outlived CONN_MAX_AGE, as Django does around each request.
                close_old_connections()
            try:
                if not group_ready:
                    consumer.ensure_group()
                    log_persistence(consumer.client)
                    group_ready = True
                handled = consumer.run_once(block_ms=opts["block_ms"])
            except (OperationalError, InterfaceError, redis.RedisError) as exc:
                # Database or Redis down: nothing was acknowledged, so the entries read stay
                # pending for this consumer (re-read first on the next cycle, once it is
                # back). Back off briefly and retry; redis-py reconnects by itself.
                is_redis = isinstance(exc, redis.RedisError)
                outage = redis_down if is_redis else database_down
                consumer._own_pending_checked = False
                if opts["once"]:
                    raise CommandError(f"{outage.what} unavailable: {exc}")
                delay = outage.failed(exc)
                if is_redis:
                    group_ready = False  # Redis may come back empty or configured differently
                time.sleep(delay)
                continue
            redis_down.recovered()
            database_down.recovered()
            if handled:
                batches += 1
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY_SECONDS:
                rate = (consumer.events_seen - reported) / (now - last_report)
                logger.info(
                    "consumer %s: %d events stored, %.0f events/s, %.0f s up",
                    consumer.consumer,
                    consumer.events_stored,
                    rate,
                    now - started,
                )
                self.stdout.write(f"{consumer.events_stored} events stored ({rate:,.0f}/s)")
                last_report, reported = now, consumer.events_seen
            if opts["once"] or (opts["max_batches"] and batches >= opts["max_batches"]):
                break
