"""Redis, the cache and Celery (broker, limits, beat, heartbeats)."""

from pathlib import Path

from .base import VAR_DIR, env

# --- Redis, cache, Celery --------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")

if REDIS_URL:
    # Django's Redis cache where an unreachable Redis is a miss (core/cache.py). A
    # live Redis accepts a connection in well under a millisecond: waiting longer only delays
    # the request that finds it gone (the ones after it skip Redis for a few seconds).
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="up"),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 2},
        }
    }
else:
    # A file cache, not local memory: web, worker and beat are separate processes and
    # must share throttle counters and the dashboard cache generation. Culled without
    # losing the generations (core/file_cache.py); entries are a few KiB each.
    CACHES = {
        "default": {
            "BACKEND": "core.file_cache.FileCache",
            "LOCATION": env("CACHE_DIR", default=str(VAR_DIR / "cache")),
            "OPTIONS": {"MAX_ENTRIES": env.int("CACHE_MAX_ENTRIES", default=5000)},
        }
    }

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_DIR = Path(env("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        # kombu's default is `control/` in the working directory (the repository root).
        "control_folder": str(CELERY_BROKER_DIR / "control"),
    }
    # kombu creates none of them but `control`, and that one without its parents: a worker
    # started first on a fresh clone would crash on the missing queue folder.
    for _folder in ("queue", "processed", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 30 * 60
# KiB. A pool process that has grown past this when a task ends is replaced by a fresh fork:
# the detectors load numpy and pandas (a child goes from ~80 to ~185 MB), so the next
# hourly run pays ~2 s of imports again and the worker gives the memory back in between.
# 0: never replace (prefork pool only).
CELERY_WORKER_MAX_MEMORY_PER_CHILD = env.int("CELERY_WORKER_MAX_MEMORY_PER_CHILD", default=150_000) or None
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_TIMEZONE = "UTC"
# django-celery-beat's database scheduler, touching a heartbeat file on every tick.
CELERY_BEAT_SCHEDULER = "usage_platform.heartbeat:HeartbeatScheduler"
# The Celery worker and beat touch `worker` and `beat` here; the container health checks
# (scripts/healthcheck.py) read their age.
HEARTBEAT_DIR = Path(env("HEARTBEAT_DIR", default=str(VAR_DIR / "heartbeat")))
