import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

app = Celery("usage_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# A heartbeat file for the container health check (usage_platform/heartbeat.py); by name,
# so it is imported only when a worker starts, after Django is set up.
app.steps["worker"].add("usage_platform.heartbeat:WorkerHeartbeat")

# The whole beat schedule, in one place. django-celery-beat's DatabaseScheduler copies
# these entries into its tables at start-up, so staff can also see and pause them in the
# Django admin. Times are UTC.
app.conf.beat_schedule = {
    # Every night at 00:15: roll up yesterday plus every (organisation, day) that late
    # events marked dirty, then run the anomaly detectors and send alerts (chained).
    "rollup-nightly": {
        "task": "analytics.rollup_scheduled",
        "schedule": crontab(minute=15, hour=0),
    },
    # Every hour at :05: roll up today so far, so dashboards are never more than an hour
    # behind, and pick up any days marked dirty since the last run.
    "rollup-hourly-today": {
        "task": "analytics.rollup_today",
        "schedule": crontab(minute=5),
    },
    # Every night at 00:05 (before the nightly rollup): create the events table's partitions
    # for this month and the next EVENT_PARTITIONS_AHEAD months where missing (PostgreSQL),
    # so no insert ever waits for one; a no-op on SQLite.
    "event-partitions-prepare": {
        "task": "telemetry.partitions_prepare",
        "schedule": crontab(minute=5, hour=0),
    },
    # Every night at 02:30: drop the raw events older than RAW_EVENT_RETENTION_MONTHS (whole
    # monthly partitions on PostgreSQL, rows on SQLite); the rollups stay. Off when it is 0.
    "raw-events-expire": {
        "task": "telemetry.raw_events_expire",
        "schedule": crontab(minute=30, hour=2),
    },
    # Every night at 02:45: forget event uuids older than EVENT_DEDUPE_DAYS (the dedupe
    # window for retried events, PostgreSQL).
    "event-uuids-expire": {
        "task": "telemetry.event_uuids_expire",
        "schedule": crontab(minute=45, hour=2),
    },
    # Every 5 minutes: a run for each organisation being deleted that no run is at work on
    # (its worker died, or its task never reached the broker); it carries on where the last
    # stopped (tenants.org_deletion).
    "organization-deletions-resume": {
        "task": "tenants.organization_deletions_resume",
        "schedule": crontab(minute="*/5"),
    },
    # Every 5 minutes: a run for each large feature being deleted that no run has renewed
    # for 15 minutes (its message lost, its worker stopped; telemetry.services.feature_deletion).
    "feature-deletions-resume": {
        "task": "telemetry.features_deletions_resume",
        "schedule": crontab(minute="*/5"),
    },
    # Every 5 minutes: webhook attempts queued but never run (their message lost: the broker
    # was out of reach when they were queued, Redis restarted without them) are sent again.
    "webhook-deliveries-resend": {
        "task": "insights.webhook_deliveries_resend",
        "schedule": crontab(minute="*/5"),
    },
    # Every night at 01:00: refresh each organisation's narrative insight.
    "insights-daily": {
        "task": "insights.refresh_all",
        "schedule": crontab(minute=0, hour=1),
    },
    # Every night at 01:30: post yesterday's KPIs to every `export.daily` webhook.
    "export-daily": {
        "task": "insights.export_daily_all",
        "schedule": crontab(minute=30, hour=1),
    },
}
