"""Celery adapters for the rollup service. The logic lives in `analytics.rollup`; these
tasks pick the days, call it, and hand over to the insights engine by task name
(`handover`: the analytics app must not import insights, it sits above us in the layering)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from celery import shared_task

from core.days import today
from tenants.models import Organization

from . import queries, rollup
from .handover import insights_notify, insights_notify_range
from .params import DEFAULT_RANGE_DAYS

logger = logging.getLogger(__name__)


def _prewarm(org_ids):
    """Compute the default dashboard (the last 30 days) of each organisation right after its
    rollup, so the first person to open it is served from the cache."""
    end = today()
    start = end - timedelta(days=DEFAULT_RANGE_DAYS - 1)
    for org in Organization.objects.in_service().filter(pk__in=list(org_ids)):
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
        org_id: set(days) for org_id in Organization.objects.in_service().values_list("pk", flat=True)
    }
    for org_id, marked in dirty.items():
        days_by_org.setdefault(org_id, set()).update(marked)
    notified = insights_notify(days_by_org)
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
    """A backfill queued from elsewhere (the admin); dates as YYYY-MM-DD. Hands the days to
    insights like the scheduled runs (`handover`)."""
    first, last = date.fromisoformat(since), date.fromisoformat(until)
    rows = rollup.rollup_range(first, last, org_id)
    insights_notify_range(first, last, org_id)
    return rows
