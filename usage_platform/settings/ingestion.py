"""Ingestion (direct or through the Redis stream), its limits and caches, and the raw events'
partitions, retention and dedupe."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from .base import env

# --- Ingestion -------------------------------------------------------------------------
INGEST_MODE = env("INGEST_MODE", default="direct")  # direct | queue
INGEST_STREAM = env("INGEST_STREAM", default="usage:events")
INGEST_CONSUMER_GROUP = env("INGEST_CONSUMER_GROUP", default="ingest")
INGEST_MAX_BATCH = 1000
INGEST_MAX_BODY_BYTES = 5 * 1024 * 1024
INGEST_MAX_METADATA_BYTES = 16 * 1024
INGEST_MAX_FUTURE = timedelta(hours=24)
# Events older than this many days are refused (0: back to 1970): a client whose clock says
# 0 (1970) or 1999 would otherwise mark decades of days for the rollup to walk. History older
# than ten years is imported with a larger value.
INGEST_MAX_AGE_DAYS = env.int("INGEST_MAX_AGE_DAYS", default=3653)
INGEST_THROTTLE_RATE = env("INGEST_THROTTLE_RATE", default="100000/min")
# A consumer reclaims entries another consumer read but did not acknowledge for this long.
INGEST_CLAIM_MIN_IDLE_MS = env.int("INGEST_CLAIM_MIN_IDLE_MS", default=60_000)
# Queue mode answers 202 only into a Redis that persists (AOF); without it events are
# written directly. True accepts a Redis whose restart loses what is queued (development,
# or a managed Redis whose durability comes from elsewhere). See telemetry/services/durability.py.
INGEST_ALLOW_VOLATILE_REDIS = env.bool("INGEST_ALLOW_VOLATILE_REDIS", default=False)
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)
# Queue mode: how long a process reuses a feature reference it has resolved (0: never).
INGEST_FEATURE_CACHE_SECONDS = env.float("INGEST_FEATURE_CACHE_SECONDS", default=30.0)
# How long a process remembers an end user's id and seen span (0: never); see telemetry/services/storage/end_users.py.
INGEST_END_USER_CACHE_SECONDS = env.float("INGEST_END_USER_CACHE_SECONDS", default=60.0)
# How long a process trusts a key it has looked up: revoking it takes effect at once in the
# process that revoked it and within this many seconds everywhere else. 0 turns caching off.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)

# --- Raw events: partitions, retention, dedupe (docs/scaling.md, "Partitions") ---
# Months of raw events kept (the current month counts as one); older events are refused at
# ingestion and, on PostgreSQL, their monthly partitions are dropped whole by the nightly
# `telemetry.raw_events_expire` job (SQLite deletes the rows). Rollups are kept. 0 keeps
# raw events forever; 1 is refused (below).
RAW_EVENT_RETENTION_MONTHS = env.int("RAW_EVENT_RETENTION_MONTHS", default=0)
if RAW_EVENT_RETENTION_MONTHS < 0 or RAW_EVENT_RETENTION_MONTHS == 1:
    # With 1 the horizon moves to the 1st at midnight: the last day of the month is never
    # rolled up again (its nightly rollup at 00:15 and its late events are refused), so its
    # events after the last hourly rollup never reach the figures.
    raise ImproperlyConfigured(
        f"RAW_EVENT_RETENTION_MONTHS={RAW_EVENT_RETENTION_MONTHS}: set 0 (raw events kept forever) or 2 or more; "
        "with 1 the last day of each month expires at midnight, before its nightly rollup and its late events."
    )
# PostgreSQL: months after the current one whose partitions the daily job keeps ready.
EVENT_PARTITIONS_AHEAD = env.int("EVENT_PARTITIONS_AHEAD", default=3)
# PostgreSQL: days an event's uuid is remembered in the dedupe table, so a retry that comes
# back this long after (the SDKs retry for up to 7 days) is still skipped whatever its
# timestamp; a retry with the same timestamp is skipped for as long as the event is kept.
EVENT_DEDUPE_DAYS = env.int("EVENT_DEDUPE_DAYS", default=8)

# Ingestion bodies may be 5 MB; everything else keeps Django's 2.5 MB guard.
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES + 1024
