"""Celery adapters for the rollup service. The logic lives in `analytics.rollup`; these
tasks pick the days, call it, and hand over to the insights engine by task name (the
analytics app must not import insights: it sits above us in the layering)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import current_app, shared_task

from tenants.models import Organization

from . import queries, rollup
from .params import DEFAULT_RANGE_DAYS, today

logger = logging.getLogger(__name__)

AFTER_ROLLUP_TASK = "insights.after_rollup"


def _notify_insights(days_by_org: dict[int, set[date]]) -> int:
    """Send `insights.after_rollup` once per organisation with the days just rolled up.
    Returns the number of messages sent."""
    app = current_app
    if app.conf.task_always_eager and AFTER_ROLLUP_TASK not in app.tasks:
        # Eager mode (tests, embedded one-off runs) has no worker to receive a task that is
        # not registered in this process; sending it would only fill the broker.
        logger.info("%s is not registered; skipping the hand-over", AFTER_ROLLUP_TASK)
        return 0
    sent = 0
    for org_id, days in sorted(days_by_org.items()):
        app.signature(
            AFTER_ROLLUP_TASK, kwargs={"org_id": org_id, "dates": [d.isoformat() for d in sorted(days)]}
        ).apply_async()
        sent += 1
    return sent


def _prewarm(org_ids):
    """Compute the default dashboard (the last 30 days) of each organisation right after its
    rollup, so the first person to open it is served from the cache."""
    end = today()
    start = end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    for org in Organization.objects.filter(pk__in=list(org_ids)):
        queries.usage_summary(org, start, end)
        queries.feature_usage(org, start, end)
        queries.timeseries(org, metric="events", interval="day", start=start, end=end)
        queries.timeseries(org, metric="active_users", interval="day", start=start, end=end)


def _roll(days: list[date]) -> dict:
    """Roll `days` for every organisation, then every dirty (organisation, day); hand every
    organisation its days (an organisation without events still gets them: a drop to zero is
    exactly what the anomaly detectors must see)."""
    dirty = rollup.dirty_days()
    rows = sum(rollup.rollup_day(day) for day in days)
    rerolled = rollup.rollup_dirty()
    days_by_org: dict[int, set[date]] = {
        org_id: set(days) for org_id in Organization.objects.values_list("pk", flat=True)
    }
    for org_id, marked in dirty.items():
        days_by_org.setdefault(org_id, set()).update(marked)
    notified = _notify_insights(days_by_org)
    _prewarm(days_by_org)
    result = {"days": [d.isoformat() for d in days], "rows": rows, "dirty": rerolled, "notified": notified}
    logger.info("rollup done: %s", result)
    return result


@shared_task(name="analytics.rollup_scheduled", time_limit=30 * 60, soft_time_limit=25 * 60)
def rollup_scheduled() -> dict:
    """Nightly: yesterday (UTC) plus the days marked by late events."""
    return _roll([today() - timedelta(days=1)])


@shared_task(name="analytics.rollup_today", time_limit=30 * 60, soft_time_limit=25 * 60)
def rollup_today() -> dict:
    """Hourly: today so far plus the days marked by late events."""
    return _roll([today()])


@shared_task(name="analytics.rollup_range", time_limit=30 * 60, soft_time_limit=25 * 60)
def rollup_range_task(since: str, until: str, org_id: int | None = None) -> int:
    """A backfill queued from elsewhere (the admin); dates as YYYY-MM-DD."""
    return rollup.rollup_range(date.fromisoformat(since), date.fromisoformat(until), org_id)
