"""Liveness for load balancers and a detailed check for platform staff."""

import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.response import Response

from core.db_routing import replica_status
from core.openapi import without_storage
from core.redis_backoff import redis_client, redis_ping, redis_urls
from tenants.authentication import UserJWTAuthentication

REDIS_DOWN = (
    "Redis is unreachable: caches miss (figures are computed from the database), rate limits "
    "are off, ingestion writes directly."
)
# The hourly rollup (at :05) takes every late-data mark set before it starts: a mark still
# waiting two hours after it was set has been missed by a run, not merely not reached yet.
LATE_DATA_MAX_WAIT = timedelta(hours=2)
# The default partition is normally empty: counting stops past this many rows, so a large one
# costs the check a bounded read, never a scan of all of it.
DEFAULT_PARTITION_COUNT_UP_TO = 10_000


@without_storage
@extend_schema(
    responses={
        200: inline_serializer(
            "Liveness",
            {
                "status": serializers.ChoiceField(choices=["ok", "degraded"]),
                "degraded": serializers.ListField(
                    child=serializers.CharField(), required=False, help_text='What is down, e.g. ["redis"].'
                ),
                "detail": serializers.CharField(required=False),
            },
        )
    },
    summary="Liveness: the web process answers (and says when it runs degraded)",
    tags=["health"],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def liveness(request):
    # Degraded is still 200: every web process shares the one Redis, so taking them out of
    # the load balancer would turn slower pages into no pages. The ping is skipped while the
    # request path's back-off rests a failed Redis, so probes do not pile up timeouts.
    if all(redis_ping(url, "health check") for url in redis_urls()):
        return Response({"status": "ok"})
    return Response({"status": "degraded", "degraded": ["redis"], "detail": REDIS_DOWN})


def _timed(check):
    started = time.perf_counter()
    try:
        detail = check()
        status = "ok"
    except Exception as exc:  # a health check reports failures, it never raises them
        detail = f"{type(exc).__name__}: {exc}"
        status = "error"
    return {"status": status, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _replica():
    # Where analytics reads go, how far the standby is behind (core.db_routing), or
    # "not configured"; unreachable or not a standby is an error.
    return replica_status()


def _cache():
    cache.set("health:probe", "1", 10)
    if cache.get("health:probe") != "1":
        # The Redis cache answers misses instead of errors (core/cache.py).
        raise RuntimeError("cache did not return the value just written (every read misses)")
    return settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]


def _redis():
    urls = redis_urls()
    for url in urls:
        redis_client(url).ping()
    return {"servers": len(urls)} if urls else "not configured"


def _redis_client():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def _broker():
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        queue = settings.CELERY_BROKER_DIR / "queue"
        depth = len(list(queue.glob("*"))) if queue.exists() else 0
        return {"transport": "filesystem", "pending_messages": depth}
    from usage_platform.celery import app

    with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return {"transport": settings.CELERY_BROKER_URL.split("://", 1)[0]}


class QueueNotDurable(Exception):
    """Queue mode is configured, but its Redis does not persist: events are written directly."""


def _ingest_queue():
    from telemetry.services import durability

    if not settings.REDIS_URL:
        return {"mode": settings.INGEST_MODE, "stream_length": None}
    client = _redis_client()
    length = client.xlen(settings.INGEST_STREAM) if client.exists(settings.INGEST_STREAM) else 0
    detail = {"mode": settings.INGEST_MODE, "stream_length": length, **durability.queue_status(client)}
    if detail["fallback"]:
        raise QueueNotDurable(
            f"INGEST_MODE=queue but Redis does not persist ({detail['persistence']}): events are written directly"
        )
    return detail


def _last_rollup():
    from analytics.models import DailyOrgUsage

    last = DailyOrgUsage.objects.aggregate(last=Max("computed_at"))["last"]
    if last is None:
        return {"last_computed_at": None, "age_seconds": None}
    return {"last_computed_at": last.isoformat(), "age_seconds": int((timezone.now() - last).total_seconds())}


class LateDataWaiting(Exception):
    """A late-data mark has waited longer than LATE_DATA_MAX_WAIT for the rollup."""


def _late_data():
    from telemetry.queries import late_data_backlog

    backlog = late_data_backlog()
    if backlog.oldest_marked_at is None:
        return {"marks": 0, "oldest_day": None, "oldest_marked_at": None, "oldest_wait_seconds": None}
    waited = timezone.now() - backlog.oldest_marked_at
    if waited > LATE_DATA_MAX_WAIT:
        raise LateDataWaiting(
            f"{backlog.marks} late-data mark(s) waiting for the rollup, the oldest set at "
            f"{backlog.oldest_marked_at.isoformat()} ({waited.total_seconds() / 3600:.1f} h ago), the oldest day "
            f"marked {backlog.oldest_day}: the hourly rollup (analytics.rollup_today) has not taken them; check "
            "the Celery worker and beat (`manage.py rollup --dirty` re-rolls them by hand)"
        )
    return {
        "marks": backlog.marks,
        "oldest_day": backlog.oldest_day.isoformat() if backlog.oldest_day else None,
        "oldest_marked_at": backlog.oldest_marked_at.isoformat(),
        "oldest_wait_seconds": int(waited.total_seconds()),
    }


def _events_default_partition():
    from telemetry.services import partitions

    rows = partitions.default_partition_rows(up_to=DEFAULT_PARTITION_COUNT_UP_TO)
    if rows is None:
        return "not partitioned"
    # Shown, not an error: late events of a month without a partition (an old month's, an
    # import's) wait there until the nightly job moves them, the normal course of a backfill;
    # a 503 for it would take a healthy node out of a balancer for up to a day.
    shown = f"{DEFAULT_PARTITION_COUNT_UP_TO}+" if rows > DEFAULT_PARTITION_COUNT_UP_TO else rows
    detail: dict[str, object] = {"partition": partitions.DEFAULT, "rows": shown}
    if rows:
        detail["note"] = (
            "their month had no partition when they came (late events, an import of an old month); the nightly "
            "job (telemetry.partitions_prepare, 00:05 UTC) moves them into partitions of their own, "
            "`manage.py events_upkeep --partitions` does it now"
        )
    return detail


_LATE_HOURS = int(LATE_DATA_MAX_WAIT.total_seconds() // 3600)
_DETAILED = inline_serializer(
    "HealthDetailed",
    {
        "status": serializers.ChoiceField(choices=["ok", "degraded"]),
        "checks": serializers.DictField(
            child=serializers.JSONField(),
            help_text=(
                "database, replica (reads, lag_seconds, bytes_behind, replayed_lsn), cache, redis, celery_broker, "
                "ingest_queue (mode, active, persistence, stream_length), rollup, late_data (marks, oldest_day, "
                f"oldest_marked_at, oldest_wait_seconds; an error once a mark has waited over {_LATE_HOURS} hours), "
                "events_default_partition (partition, rows, note while it holds rows, which the nightly job "
                "moves; 'not partitioned' on SQLite): each {status, detail, ms}"
            ),
        ),
    },
)


@extend_schema(
    responses={
        200: _DETAILED,
        503: OpenApiResponse(
            _DETAILED,
            description=(
                "A dependency is down, a late-data mark waited too long, or events sit in the default partition."
            ),
        ),
    },
    summary="Dependencies, queue depth, rollup age and late data (platform staff)",
    tags=["health"],
)
@api_view(["GET"])
@authentication_classes([UserJWTAuthentication])
@permission_classes([IsAdminUser])
def detailed(request):
    checks = {
        "database": _timed(_database),
        "replica": _timed(_replica),
        "cache": _timed(_cache),
        "redis": _timed(_redis),
        "celery_broker": _timed(_broker),
        "ingest_queue": _timed(_ingest_queue),
        "rollup": _timed(_last_rollup),
        "late_data": _timed(_late_data),
        "events_default_partition": _timed(_events_default_partition),
    }
    healthy = all(c["status"] == "ok" for c in checks.values())
    return Response({"status": "ok" if healthy else "degraded", "checks": checks}, status=200 if healthy else 503)
