"""The KPI summary of a period against the previous one."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet, Sum

from core.days import day_start
from telemetry.models import EndUser, UsageEvent
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyOrgUsage
from .cache import cached
from .common import bounds, change_pct, feature_pk, previous_period, raw_events, rounded_or_none, session_average


def _distinct_users(org: Organization, start: date, end: date, feature_id: int | None = None) -> int:
    """End users with at least one event in the range: one index probe per end user on
    (organization, end_user, timestamp) instead of sorting every event of the range."""
    lo, hi = bounds(start, end)
    events = UsageEvent.objects.filter(organization=org, end_user=OuterRef("pk"), timestamp__gte=lo, timestamp__lt=hi)
    if feature_id is not None:
        events = events.filter(feature_id=feature_id)
    return EndUser.objects.filter(organization=org).filter(Exists(events)).count()


def _kpi(value: float | None, previous: float | None) -> dict[str, Any]:
    return {"value": value, "previous": previous, "change_pct": change_pct(value, previous)}


def _summary_raw(
    org: Organization,
    start: date,
    end: date,
    prev_start: date,
    prev_end: date,
    feature_id: int | None,
    age: str | None,
    gender: str | None,
) -> dict[str, Any]:
    """The summary straight from raw events, for demographic filters (the rollups carry no
    age or gender): one conditional aggregate over both periods."""
    qs = raw_events(org, prev_start, end, feature_id, age, gender)
    cur_lo = day_start(start)
    cur, prev = Q(timestamp__gte=cur_lo), Q(timestamp__lt=cur_lo)
    with_session = ~Q(session_id="")
    t = qs.aggregate(
        cur_events=Count("id", filter=cur),
        prev_events=Count("id", filter=prev),
        cur_users=Count("end_user_id", distinct=True, filter=cur),
        prev_users=Count("end_user_id", distinct=True, filter=prev),
        cur_features=Count("feature_id", distinct=True, filter=cur),
        prev_features=Count("feature_id", distinct=True, filter=prev),
        cur_sessions=Count("session_id", distinct=True, filter=cur & with_session),
        prev_sessions=Count("session_id", distinct=True, filter=prev & with_session),
        cur_duration=Avg("session_duration", filter=cur),
        prev_duration=Avg("session_duration", filter=prev),
    )
    return {
        name: _kpi(t[f"cur_{key}"] or 0, t[f"prev_{key}"] or 0)
        for name, key in (
            ("total_events", "events"),
            ("active_users", "users"),
            ("features_tracked", "features"),
            ("sessions", "sessions"),
        )
    } | {"avg_session_duration": _kpi(rounded_or_none(t["cur_duration"]), rounded_or_none(t["prev_duration"]))}


@cached
def usage_summary(org: Organization, start: date, end: date, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """KPIs for start..end, each `{value, previous, change_pct}` against the previous period
    of equal length. `filters` may hold `feature` (a Feature or its id), `age` (band) and
    `gender`; the demographic ones are answered from raw events, the rest from rollups."""
    filters = filters or {}
    feature_id = feature_pk(filters.get("feature"))
    prev_start, prev_end = previous_period(start, end)
    head = {"start": start, "end": end, "previous_start": prev_start, "previous_end": prev_end}
    if filters.get("age") or filters.get("gender"):
        return head | _summary_raw(
            org, start, end, prev_start, prev_end, feature_id, filters.get("age"), filters.get("gender")
        )
    cur = Q(date__gte=start, date__lte=end)
    prev = Q(date__gte=prev_start, date__lte=prev_end)

    rollups: QuerySet[DailyOrgUsage] | QuerySet[DailyFeatureUsage]
    if feature_id is None:
        rollups = DailyOrgUsage.objects.filter(organization=org)
    else:
        rollups = DailyFeatureUsage.objects.filter(organization=org, feature_id=feature_id)
    totals = rollups.filter(date__gte=prev_start, date__lte=end).aggregate(
        cur_events=Sum("event_count", filter=cur),
        prev_events=Sum("event_count", filter=prev),
        cur_sessions=Sum("sessions", filter=cur),
        prev_sessions=Sum("sessions", filter=prev),
        duration=Sum("total_session_duration", filter=cur),
        prev_duration=Sum("total_session_duration", filter=prev),
        timed=Sum("timed_events", filter=cur),
        prev_timed=Sum("timed_events", filter=prev),
    )
    features = DailyFeatureUsage.objects.filter(
        organization=org, date__gte=prev_start, date__lte=end, event_count__gt=0
    )
    if feature_id is not None:
        features = features.filter(feature_id=feature_id)
    tracked = features.aggregate(
        cur=Count("feature_id", distinct=True, filter=cur), prev=Count("feature_id", distinct=True, filter=prev)
    )

    events, prev_events = totals["cur_events"] or 0, totals["prev_events"] or 0
    return head | {
        "total_events": _kpi(events, prev_events),
        "active_users": _kpi(
            _distinct_users(org, start, end, feature_id), _distinct_users(org, prev_start, prev_end, feature_id)
        ),
        "features_tracked": _kpi(tracked["cur"] or 0, tracked["prev"] or 0),
        "sessions": _kpi(totals["cur_sessions"] or 0, totals["prev_sessions"] or 0),
        "avg_session_duration": _kpi(
            session_average(totals["duration"] or 0, totals["timed"]),
            session_average(totals["prev_duration"] or 0, totals["prev_timed"]),
        ),
    }
