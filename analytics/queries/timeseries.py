"""Charted series: one metric per day or week, from the daily rollups or, for person filters
and weekly distinct users, from the per-user rollups."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncWeek

from telemetry.models import Account, Feature
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyOrgUsage
from . import active
from .cache import cached
from .common import days_between, feature_pk, week_monday
from .filters import ROLLED_UP_MODELS, has_person_filter, has_rolled_up_person_filter, segment_rows
from .summary import user_rows


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
    account: Account | int | None = None,
    user_properties: dict[str, str] | None = None,
) -> dict[str, Any]:
    """`{metric, interval, start, end, points: [{date, value}]}`, one point per day or week
    (weeks start on Monday; a first week cut by `start` is labelled `start`), zero-filled.
    Reads the organisation or feature rollups, the person segments under age and gender,
    the accounts under an account (an Account or its id),
    and the per-user rollups for weekly distinct users (which daily counts cannot add up to).
    `user_properties` ({name: value}) is a person filter too (then the per-user rollups)."""
    feature_id = feature_pk(feature)
    buckets = _buckets(start, end, interval)
    filters = {
        "feature": feature_id,
        "age": age,
        "gender": gender,
        "account": account,
        "user_properties": user_properties,
    }
    if interval == "week" and metric == "active_users":
        values = dict(active.filtered_weekly_users(org, filters, start, end))
    elif has_rolled_up_person_filter(filters):
        values = _series_users(org, metric, interval, start, end, segment_rows(org, filters))
    elif has_person_filter(filters):
        values = _series_users(org, metric, interval, start, end, user_rows(org, filters))
    else:
        values = _series_rollup(org, metric, interval, start, end, feature_id)
    average = metric == "avg_session_duration"
    points: list[dict[str, Any]] = []
    for bucket in buckets:
        value = values.get(bucket)
        # A week that starts before `start` holds only the days from `start` on: it is labelled
        # with its first day in the range, never a day the caller did not ask for.
        label = max(bucket, start)
        if average:
            # No event with a duration: nothing to average, null (as the summary's), not 0 s.
            points.append({"date": label, "value": None if value is None else round(float(value), 2)})
        else:
            points.append({"date": label, "value": int(value or 0)})
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
        "date", "event_count", users_field, "total_session_duration", "timed_events"
    )
    if interval == "day" and metric != "avg_session_duration":
        column = {"events": 1, "active_users": 2}[metric]
        return {row[0]: row[column] for row in rows}
    # Weekly events add up; an average session is rebuilt from totals and counts (a day's
    # stored average is 0 without timed events, where there is nothing to average).
    events: dict[date, int] = defaultdict(int)
    duration: dict[date, float] = defaultdict(float)
    timed: dict[date, int] = defaultdict(int)
    for day, count, _users, total, n in rows:
        bucket = week_monday(day) if interval == "week" else day
        events[bucket] += count
        duration[bucket] += total
        timed[bucket] += n
    if metric == "events":
        return dict(events)
    return {bucket: duration[bucket] / timed[bucket] for bucket in timed if timed[bucket]}


def _series_users(
    org: Organization, metric: str, interval: str, start: date, end: date, rows: QuerySet[Any]
) -> dict[date, Any]:
    """A series from per-user rows (weekly distinct users, which daily counts cannot add up
    to) or from person segments' rows (a person filter: events, the average session and
    daily users add up over the segments the filter keeps)."""
    rows = rows.filter(date__gte=start, date__lte=end)
    bucket = F("date") if interval == "day" else TruncWeek("date")
    grouped = rows.annotate(bucket=bucket).values("bucket")
    if metric == "events":
        series = grouped.annotate(value=Sum("event_count")).values_list("bucket", "value")
        return {_as_date(b): v or 0 for b, v in series}
    if metric == "active_users":
        users = Sum("active_users") if rows.model in ROLLED_UP_MODELS else Count("end_user_id", distinct=True)
        series = grouped.annotate(value=users).values_list("bucket", "value")
        return {_as_date(b): v or 0 for b, v in series}
    sums = grouped.annotate(duration=Sum("total_session_duration"), timed=Sum("timed_events"))
    return {_as_date(b): d / n for b, d, n in sums.values_list("bucket", "duration", "timed") if n}
