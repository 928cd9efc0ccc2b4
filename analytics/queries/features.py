"""Per-feature figures: the usage table, sparklines, one feature and its detail page."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.db.models import Count, Q, Sum

from core.exceptions import NotFound
from telemetry.models import Feature
from telemetry.queries import feature_find
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyUserFeatureUsage
from .cache import cached
from .common import change_pct, days_between, feature_pk, percent, previous_period, rounded, session_average
from .timeseries import timeseries


def stickiness_pct(daily_active_users_sum: int, days: int, distinct_users: int) -> float | None:
    """DAU/MAU as a percentage: the average daily active users over the range divided by the
    distinct users over the whole range (the "month" is the range: 30 days by default), one
    decimal; None without users. 100 means every user came back every day."""
    if not distinct_users:
        return None
    return round(daily_active_users_sum * 100.0 / days / distinct_users, 1)


def _distinct_feature_users(org: Organization, start: date, end: date, feature_id: int | None = None) -> dict[int, int]:
    """{feature_id: distinct end users over start..end}, from the per-user rollups."""
    rows = DailyUserFeatureUsage.objects.filter(organization=org, date__gte=start, date__lte=end)
    if feature_id is not None:
        rows = rows.filter(feature_id=feature_id)
    return dict(
        rows.values("feature_id").annotate(n=Count("end_user_id", distinct=True)).values_list("feature_id", "n")
    )


@cached
def feature_usage(org: Organization, start: date, end: date, *, stickiness: bool = False) -> list[dict[str, Any]]:
    """Per feature, from the rollups: events, average daily active users over the days of the
    range, avg session duration, share of all events (%), change vs the previous period and,
    with `stickiness` (one query more: the pages that only list features skip it), DAU/MAU
    as `stickiness_pct`. Features without events in either period are left out."""
    prev_start, prev_end = previous_period(start, end)
    cur = Q(date__gte=start, date__lte=end)
    rows: Iterable[dict[str, Any]] = (
        DailyFeatureUsage.objects.filter(organization=org, date__gte=prev_start, date__lte=end)
        .values("feature_id", "feature__key", "feature__name")
        .annotate(
            events=Sum("event_count", filter=cur),
            dau=Sum("daily_active_users", filter=cur),
            duration=Sum("total_session_duration", filter=cur),
            timed=Sum("timed_events", filter=cur),
            prev_events=Sum("event_count", filter=Q(date__gte=prev_start, date__lte=prev_end)),
        )
    )
    days = (end - start).days + 1
    rows = [r for r in rows if (r["events"] or r["prev_events"])]
    total = sum(r["events"] or 0 for r in rows)
    distinct = _distinct_feature_users(org, start, end) if stickiness and rows else {}
    results: list[dict[str, Any]] = []
    for r in rows:
        events = r["events"] or 0
        row = {
            "feature_id": r["feature_id"],
            "feature_key": r["feature__key"],
            "feature_name": r["feature__name"],
            "events": events,
            "avg_daily_active_users": rounded((r["dau"] or 0) / days),
            "avg_session_duration": session_average(r["duration"] or 0, r["timed"]),
            "share": percent(events, total),
            "previous_events": r["prev_events"] or 0,
            "change_pct": change_pct(events, r["prev_events"] or 0),
        }
        if stickiness:
            row["stickiness_pct"] = stickiness_pct(r["dau"] or 0, days, distinct.get(r["feature_id"], 0))
        results.append(row)
    results.sort(key=lambda r: (-r["events"], r["feature_key"]))
    return results


@cached
def feature_sparklines(org: Organization, start: date, end: date) -> dict[int, list[int]]:
    """{feature_id: [daily events, zero-filled, start..end]} for features with events."""
    days = days_between(start, end)
    index = {day: i for i, day in enumerate(days)}
    lines: dict[int, list[int]] = {}
    rows = DailyFeatureUsage.objects.filter(organization=org, date__gte=start, date__lte=end).values_list(
        "feature_id", "date", "event_count"
    )
    for feature_id, day, count in rows:
        lines.setdefault(feature_id, [0] * len(days))[index[day]] = count
    return lines


def feature_get(org: Organization, feature_id: object) -> Feature:
    """One feature of `org`; another organisation's or an unknown id is NotFound."""
    feature = feature_find(org, feature_id, by_key=False)
    if feature is None:
        raise NotFound("Feature not found.")
    return feature


@cached
def feature_figures(
    org: Organization, *, feature: Feature | int, start: date, end: date, interval: str = "day"
) -> dict[str, Any]:
    """One feature over start..end as its detail page shows it: `events`, active users per
    `interval` bucket (`avg_active_users`, `peak_active_users`, as charted), the average
    session by `session_average` over the whole range, stickiness (DAU/MAU over the range,
    `stickiness_pct`) and the charted `points` ([{date, events, active_users}], zero-filled)."""
    feature_id = feature_pk(feature)
    series: dict[str, Any] = {"interval": interval, "start": start, "end": end, "feature": feature_id}
    events = timeseries.uncached(org, metric="events", **series)["points"]
    active = [p["value"] for p in timeseries.uncached(org, metric="active_users", **series)["points"]]
    totals = DailyFeatureUsage.objects.filter(
        organization=org, feature_id=feature_id, date__gte=start, date__lte=end
    ).aggregate(duration=Sum("total_session_duration"), timed=Sum("timed_events"), dau=Sum("daily_active_users"))
    distinct = _distinct_feature_users(org, start, end, feature_id).get(feature_id, 0)
    return {
        "events": sum(p["value"] for p in events),
        "avg_active_users": sum(active) / len(active) if active else 0,
        "peak_active_users": max(active, default=0),
        "avg_session_duration": session_average(totals["duration"] or 0, totals["timed"]),
        "stickiness_pct": stickiness_pct(totals["dau"] or 0, (end - start).days + 1, distinct),
        "points": [
            {"date": p["date"], "events": p["value"], "active_users": a} for p, a in zip(events, active, strict=True)
        ],
    }
