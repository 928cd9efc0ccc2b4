"""Per-feature figures: the usage table, sparklines, one feature and its detail page."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from core.exceptions import NotFound
from telemetry.models import Feature
from telemetry.queries import feature_find
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyUserFeatureUsage
from . import active
from .cache import cached
from .common import change_pct, days_between, feature_pk, percent, previous_period, rounded, session_average
from .filters import (
    ROLLED_UP_MODELS,
    filters_apply,
    has_person_filter,
    person_filters,
    rolled_up_model,
    rolled_up_rows,
)
from .timeseries import timeseries


def stickiness_pct(daily_active_users_sum: int, days: int, distinct_users: int) -> float | None:
    """DAU/MAU as a percentage: the average daily active users over the range divided by the
    distinct users over the whole range (the "month" is the range: 30 days by default), one
    decimal; None without users. 100 means every user came back every day."""
    if not distinct_users:
        return None
    return round(daily_active_users_sum * 100.0 / days / distinct_users, 1)


def _distinct_feature_users(org: Organization, start: date, end: date, filters: dict[str, Any]) -> dict[int, int]:
    """{feature_id: distinct end users over start..end}, from the per-feature active-day
    bitmasks, under `filters` (a feature, the person filters)."""
    return active.feature_users(org, start, end, filters)


def _feature_rows(org: Organization, start: date, end: date, filters: dict[str, Any]) -> QuerySet[Any]:
    """Rows per feature and day (the feature rollups); under person filters a group rollup
    carries (age and gender, or an account) that rollup's rows of each feature, else per
    feature, end user and day; narrowed by every filter."""
    model = rolled_up_model(filters)
    if model is not None:
        rows = rolled_up_rows(org, filters, model).filter(feature__isnull=False, date__gte=start, date__lte=end)
        feature_id = feature_pk(filters.get("feature"))
        return rows if feature_id is None else rows.filter(feature_id=feature_id)
    if has_person_filter(filters):
        return filters_apply(DailyUserFeatureUsage.objects.filter(organization=org), filters).filter(
            date__gte=start, date__lte=end
        )
    return filters_apply(DailyFeatureUsage.objects.filter(organization=org, date__gte=start, date__lte=end), filters)


def _daily_users(rows: QuerySet[Any], period: Q | None = None) -> Any:
    """Σ daily active users over `rows` (of `_feature_rows`) in `period`: a per-user row is
    one user-day; a group row holds its day's users (each user is in one group a day)."""
    if rows.model is DailyUserFeatureUsage:
        return Count("id", filter=period)
    return Sum("active_users" if rows.model in ROLLED_UP_MODELS else "daily_active_users", filter=period)


@cached
def feature_usage(
    org: Organization, start: date, end: date, filters: dict[str, Any] | None = None, *, stickiness: bool = False
) -> list[dict[str, Any]]:
    """Per feature, from the rollups: events, average daily active users over the days of the
    range, avg session duration, share of all events (%), change vs the previous period and,
    with `stickiness` (one query more: the pages that only list features skip it), DAU/MAU
    as `stickiness_pct`. Features without events in either period are left out. `filters` (see
    `filters.filters_apply`) narrow the rows: a person filter reads the per-user feature
    rollups, where each row is one active user of one feature on one day."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    prev_start, prev_end = previous_period(start, end)
    cur = Q(date__gte=start, date__lte=end)
    source = _feature_rows(org, prev_start, end, filters)
    daily_users = _daily_users(source)
    rows: Iterable[dict[str, Any]] = source.values("feature_id", "feature__key", "feature__name").annotate(
        events=Sum("event_count", filter=cur),
        dau=type(daily_users)(*daily_users.source_expressions, filter=cur),
        duration=Sum("total_session_duration", filter=cur),
        timed=Sum("timed_events", filter=cur),
        prev_events=Sum("event_count", filter=Q(date__gte=prev_start, date__lte=prev_end)),
    )
    days = (end - start).days + 1
    rows = [r for r in rows if (r["events"] or r["prev_events"])]
    total = sum(r["events"] or 0 for r in rows)
    distinct = _distinct_feature_users(org, start, end, filters) if stickiness and rows else {}
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
def feature_sparklines(
    org: Organization, start: date, end: date, filters: dict[str, Any] | None = None
) -> dict[int, list[int]]:
    """{feature_id: [daily events, zero-filled, start..end]} for features with events,
    narrowed by `filters` as `feature_usage` is."""
    days = days_between(start, end)
    index = {day: i for i, day in enumerate(days)}
    lines: dict[int, list[int]] = {}
    rows = (
        _feature_rows(org, start, end, {k: v for k, v in (filters or {}).items() if v})
        .values("feature_id", "date")
        .annotate(events=Sum("event_count"))
        .values_list("feature_id", "date", "events")
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
    org: Organization,
    *,
    feature: Feature | int,
    start: date,
    end: date,
    interval: str = "day",
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One feature over start..end as its detail page shows it: `events`, active users per
    `interval` bucket (`avg_active_users`, `peak_active_users`, as charted), the average
    session by `session_average` over the whole range, stickiness (DAU/MAU over the range,
    `stickiness_pct`) and the charted `points` ([{date, events, active_users}], zero-filled).
    `filters` may add the person filters."""
    feature_id = feature_pk(feature)
    people = person_filters(filters or {})
    series: dict[str, Any] = {"interval": interval, "start": start, "end": end, "feature": feature_id, **people}
    events = timeseries.uncached(org, metric="events", **series)["points"]
    active = [p["value"] for p in timeseries.uncached(org, metric="active_users", **series)["points"]]
    rows = _feature_rows(org, start, end, {"feature": feature_id, **people})
    totals = rows.aggregate(duration=Sum("total_session_duration"), timed=Sum("timed_events"), dau=_daily_users(rows))
    distinct = _distinct_feature_users(org, start, end, {"feature": feature_id, **people}).get(feature_id, 0)
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
