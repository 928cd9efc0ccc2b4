"""The KPI summary of a period against the previous one, from rollups only."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum

from telemetry.models import EndUser, Feature
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyOrgUsage, DailyUserFeatureUsage, DailyUserUsage
from . import active
from .cache import cached
from .common import change_pct, feature_pk, previous_period, session_average
from .filters import (
    filters_apply,
    has_person_filter,
    has_rolled_up_person_filter,
    person_filter,
    person_filters,
    rolled_up_model,
    rolled_up_rows,
    segment_rows,
)
from .properties import property_answers, property_rows


def _kpi(value: float | None, previous: float | None) -> dict[str, Any]:
    return {"value": value, "previous": previous, "change_pct": change_pct(value, previous)}


def _periods(start: date, end: date, prev_start: date, prev_end: date) -> tuple[Q, Q]:
    return Q(date__gte=start, date__lte=end), Q(date__gte=prev_start, date__lte=prev_end)


def user_rows(org: Organization, filters: dict[str, Any]) -> QuerySet[DailyUserUsage] | QuerySet[DailyUserFeatureUsage]:
    """The per-user rollup rows that answer `filters`: per user and feature when a feature
    is asked, else per user; narrowed by every filter."""
    if feature_pk(filters.get("feature")) is not None:
        return filters_apply(DailyUserFeatureUsage.objects.filter(organization=org), filters)
    return filters_apply(DailyUserUsage.objects.filter(organization=org), filters)


def _features_tracked_by_people(
    org: Organization, filters: dict[str, Any], periods: list[tuple[date, date]]
) -> dict[str, Any]:
    """Features used in each period by the end users the person filters keep. Under an
    account (a few of the organisation's users, whatever else narrows them) from those
    users' per-feature bitmask rows, read along the index led by the end user (~20 ms for
    the largest account's women over 60 days at 10 M events); otherwise per feature,
    whether one of its per-user rows of the period belongs to one of them (an EXISTS that
    stops at the first, along the (organization, feature, date, end_user) key), which for
    a few users hashed every feature's rows of the period (135 ms for the same filter),
    where a COUNT(DISTINCT) read every per-user row of both periods."""
    if filters.get("account"):
        cur_count, prev_count = active.features_used(org, filters, periods)
        return {"cur": cur_count, "prev": prev_count}
    people = EndUser.objects.filter(person_filter(**person_filters(filters), prefix=""), organization=org)
    used = DailyUserFeatureUsage.objects.filter(organization=org, end_user__in=people.values("pk"))
    return _features_with_rows(org, used, periods, feature_pk(filters.get("feature")))


def _features_with_rows(
    org: Organization, rows: QuerySet[Any], periods: list[tuple[date, date]], feature_id: int | None
) -> dict[str, Any]:
    """How many features (or `feature_id` alone) have one of `rows` in each period: per
    feature and period an EXISTS that stops at its first row along an index led by the
    feature, where a COUNT(DISTINCT) reads every row of both periods."""
    features = Feature.objects.filter(organization=org)
    if feature_id is not None:
        features = features.filter(pk=feature_id)
    of_feature = rows.filter(feature=OuterRef("pk"))
    cur, prev = _periods(*periods[0], *periods[1])
    return features.annotate(in_cur=Exists(of_feature.filter(cur)), in_prev=Exists(of_feature.filter(prev))).aggregate(
        cur=Count("pk", filter=Q(in_cur=True)), prev=Count("pk", filter=Q(in_prev=True))
    )


def _features_tracked(
    org: Organization, filters: dict[str, Any], periods: list[tuple[date, date]], *, by_property: bool
) -> dict[str, Any]:
    """Features used in each of the two `periods` (the range, the one before) under `filters`."""
    rows: QuerySet[Any]
    feature_id = feature_pk(filters.get("feature"))
    model = rolled_up_model(filters)
    if by_property:
        # A value's rows are per feature, day and segment: ~120,000 over two 90-day periods.
        rows = property_rows(org, filters, per_feature=True).filter(event_count__gt=0)
        return _features_with_rows(org, rows, periods, feature_id)
    if model is not None:
        rows = rolled_up_rows(org, filters, model).filter(feature__isnull=False)
    elif has_person_filter(filters):
        return _features_tracked_by_people(org, filters, periods)
    else:
        rows = DailyFeatureUsage.objects.filter(organization=org, event_count__gt=0)
    if feature_id is not None:
        rows = rows.filter(feature_id=feature_id)
    first, last = min(p[0] for p in periods), max(p[1] for p in periods)
    cur, prev = _periods(*periods[0], *periods[1])
    return rows.filter(date__gte=first, date__lte=last).aggregate(
        cur=Count("feature_id", distinct=True, filter=cur), prev=Count("feature_id", distinct=True, filter=prev)
    )


def _totals(
    org: Organization, filters: dict[str, Any], cur: Q, prev: Q, first: date, last: date, *, by_property: bool
) -> dict[str, Any]:
    """Events, sessions and session time of both periods: from the organisation or feature
    rollups (anonymous events included) unless a person filter applies, then from the
    person segments' rows (age and gender), the accounts' (an account), the dimension
    rollup's (a user property, alone or with age and gender: `by_property`) or the per-user
    rows (any other mix)."""
    rows: QuerySet[Any]
    feature_id = feature_pk(filters.get("feature"))
    if by_property:
        rows = property_rows(org, filters)
    elif has_rolled_up_person_filter(filters):
        rows = segment_rows(org, filters)
    elif has_person_filter(filters):
        rows = user_rows(org, filters)
    elif feature_id is None:
        rows = DailyOrgUsage.objects.filter(organization=org)
    else:
        rows = DailyFeatureUsage.objects.filter(organization=org, feature_id=feature_id)
    # Aliases carry a prefix: an aggregate may not share a name with a model field.
    figures: dict[str, Any] = {}
    for prefix, period in (("cur_", cur), ("prev_", prev)):
        figures |= {
            f"{prefix}events": Sum("event_count", filter=period),
            f"{prefix}sessions": Sum("sessions", filter=period),
            f"{prefix}duration": Sum("total_session_duration", filter=period),
            f"{prefix}timed": Sum("timed_events", filter=period),
        }
    return rows.filter(date__gte=first, date__lte=last).aggregate(**figures)


def _active_users(org: Organization, filters: dict[str, Any], periods: list[tuple[date, date]]) -> list[int]:
    """Distinct end users active in each period, from the active-day bitmasks (one row per
    user and 8-week block; per feature under a feature filter)."""
    return active.distinct_users(org, filters, periods)


@cached
def usage_summary(org: Organization, start: date, end: date, filters: dict[str, Any] | None = None) -> dict[str, Any]:
    """KPIs for start..end, each `{value, previous, change_pct}` against the previous period
    of equal length. `filters` may hold `feature` (a Feature or its id), `age` (band),
    `gender` and `user_properties` (see `filters.filters_apply`). Sessions are counted per day (a session that
    crosses midnight counts on both days), per end user under a person filter."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    prev_start, prev_end = previous_period(start, end)
    head = {"start": start, "end": end, "previous_start": prev_start, "previous_end": prev_end}
    cur, prev = _periods(start, end, prev_start, prev_end)
    by_property = property_answers(org, filters, prev_start, end)
    t = _totals(org, filters, cur, prev, prev_start, end, by_property=by_property)
    periods = [(start, end), (prev_start, prev_end)]
    t["cur_users"], t["prev_users"] = _active_users(org, filters, periods)
    tracked = _features_tracked(org, filters, periods, by_property=by_property)
    return head | {
        "total_events": _kpi(t["cur_events"] or 0, t["prev_events"] or 0),
        "active_users": _kpi(t["cur_users"] or 0, t["prev_users"] or 0),
        "features_tracked": _kpi(tracked["cur"] or 0, tracked["prev"] or 0),
        "sessions": _kpi(t["cur_sessions"] or 0, t["prev_sessions"] or 0),
        "avg_session_duration": _kpi(
            session_average(t["cur_duration"] or 0, t["cur_timed"]),
            session_average(t["prev_duration"] or 0, t["prev_timed"]),
        ),
    }
