"""Charted series: one metric per day or week, from rollups or, for demographic filters and
weekly distinct users, from raw events."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, QuerySet
from django.db.models.functions import TruncDate, TruncWeek

from telemetry.models import Feature
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyOrgUsage
from .cache import cached
from .common import days_between, feature_pk, raw_events, week_monday


def _buckets(start: date, end: date, interval: str) -> list[date]:
    if interval == "day":
        return days_between(start, end)
    first, last = week_monday(start), week_monday(end)
    return [first + timedelta(days=7 * i) for i in range((last - first).days // 7 + 1)]


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


@cached
def timeseries(
    org: Organization,
    *,
    metric: str = "events",
    interval: str = "day",
    start: date,
    end: date,
    feature: Feature | int | None = None,
    age: str | None = None,
    gender: str | None = None,
) -> dict[str, Any]:
    """`{metric, interval, start, end, points: [{date, value}]}`, one point per day or week
    (weeks start on Monday; a first week cut by `start` is labelled `start`), zero-filled.
    Reads rollups unless a demographic filter applies or weekly distinct users are asked
    (neither can be summed from daily rows)."""
    feature_id = feature_pk(feature)
    buckets = _buckets(start, end, interval)
    use_raw = bool(age or gender) or (interval == "week" and metric == "active_users")
    values = (
        _series_raw(org, metric, interval, start, end, feature_id, age, gender)
        if use_raw
        else (_series_rollup(org, metric, interval, start, end, feature_id))
    )
    digits = 2 if metric == "avg_session_duration" else 0
    points: list[dict[str, Any]] = []
    for bucket in buckets:
        value = values.get(bucket, 0)
        # A week that starts before `start` holds only the days from `start` on: it is labelled
        # with its first day in the range, never a day the caller did not ask for.
        label = max(bucket, start)
        points.append({"date": label, "value": round(float(value), 2) if digits else int(value)})
    return {"metric": metric, "interval": interval, "start": start, "end": end, "points": points}


def _series_rollup(
    org: Organization, metric: str, interval: str, start: date, end: date, feature_id: int | None
) -> dict[date, Any]:
    qs: QuerySet[DailyOrgUsage] | QuerySet[DailyFeatureUsage]
    if feature_id is None:
        qs = DailyOrgUsage.objects.filter(organization=org)
        users_field = "active_users"
    else:
        qs = DailyFeatureUsage.objects.filter(organization=org, feature_id=feature_id)
        users_field = "daily_active_users"
    rows = qs.filter(date__gte=start, date__lte=end).values_list(
        "date", "event_count", users_field, "avg_session_duration", "total_session_duration", "timed_events"
    )
    if interval == "day":
        column = {"events": 1, "active_users": 2, "avg_session_duration": 3}[metric]
        return {row[0]: row[column] for row in rows}
    # Weekly events add up; a weekly average session is rebuilt from totals and counts.
    events: dict[date, int] = defaultdict(int)
    duration: dict[date, float] = defaultdict(float)
    timed: dict[date, int] = defaultdict(int)
    for day, count, _users, _avg, total, n in rows:
        week = week_monday(day)
        events[week] += count
        duration[week] += total
        timed[week] += n
    if metric == "events":
        return dict(events)
    return {week: duration[week] / timed[week] for week in timed if timed[week]}


def _series_raw(
    org: Organization,
    metric: str,
    interval: str,
    start: date,
    end: date,
    feature_id: int | None,
    age: str | None,
    gender: str | None,
) -> dict[date, Any]:
    qs = raw_events(org, start, end, feature_id, age, gender)
    trunc = TruncDate("timestamp", tzinfo=UTC) if interval == "day" else TruncWeek("timestamp", tzinfo=UTC)
    aggregate = {
        "events": Count("id"),
        "active_users": Count("end_user_id", distinct=True),
        "avg_session_duration": Avg("session_duration"),
    }[metric]
    rows = qs.annotate(bucket=trunc).values("bucket").annotate(value=aggregate).values_list("bucket", "value")
    return {_as_date(bucket): value or 0 for bucket, value in rows}
