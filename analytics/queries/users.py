"""End users: the activity table and the top users, from the per-user rollups (one end user's
detail and timeline: `end_user`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import F, FloatField, Func, IntegerField, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, NullIf

from core.days import day_start, today
from telemetry.models import EndUser
from tenants.models import Organization, User

from ..models import DailyUserFeatureUsage
from . import ranked
from .cache import cached
from .common import rounded_or_none
from .filters import filters_apply
from .summary import user_rows

# The user list sorted by most events ranks from the weekly totals (`ranked`) up to this
# many rows (pages × page size); deeper pages sum every active user's days, as other sorts do.
RANKED_ROWS_MAX = 2000


_USER_SORT_FIELDS = {
    "events": "events",
    "avg_session_duration": "avg_session_duration",
    "last_seen": "last_event",
    "first_seen": "end_user__first_seen",
    "user_id": "end_user__external_id",
    "email": "end_user__email",
}


def _user_rows(rows: QuerySet[Any]) -> QuerySet[Any, dict[str, Any]]:
    """Per-user rollup rows grouped per end user: events, the average session by the one
    rule (Σ durations / Σ timed events), first and last event."""
    return rows.values("end_user_id", "end_user__external_id", "end_user__email", "end_user__first_seen").annotate(
        events=Sum("event_count"),
        avg_session_duration=Cast(Sum("total_session_duration"), FloatField())
        / NullIf(Cast(Sum("timed_events"), FloatField()), 0.0),
        **_event_bounds(rows),
    )


def _event_bounds(rows: QuerySet[Any]) -> dict[str, Any]:
    """First and last event of each user's rows: exact times from the per-user rows; under a
    feature filter (per-user feature rows keep no times) the days, as their start (UTC)."""
    if rows.model is DailyUserFeatureUsage:
        return {"first_event": Min("date"), "last_event": Max("date")}
    return {"first_event": Min("first_event_at"), "last_event": Max("last_event_at")}


def _moment(value: Any) -> Any:
    return day_start(value) if isinstance(value, date) and not isinstance(value, datetime) else value


def _top_features(rows: QuerySet[DailyUserFeatureUsage]) -> dict[int, str]:
    """{end_user_id: key of the feature with most events} in one grouped query (ties: the
    first key in alphabetical order)."""
    best: dict[int, tuple[int, str]] = {}
    grouped = rows.values("end_user_id", "feature__key").annotate(n=Sum("event_count"))
    for row in grouped:
        current = best.get(row["end_user_id"])
        candidate = (row["n"], row["feature__key"])
        if current is None or candidate[0] > current[0] or (candidate[0] == current[0] and candidate[1] < current[1]):
            best[row["end_user_id"]] = candidate
    return {uid: key for uid, (_, key) in best.items()}


def _shape_user_rows(rows: Iterable[dict[str, Any]], top: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "user_id": r["end_user__external_id"],
            "email": r["end_user__email"],
            "events": r["events"],
            "avg_session_duration": rounded_or_none(r["avg_session_duration"]),
            "first_seen": min(filter(None, (r["end_user__first_seen"], _moment(r["first_event"])))),
            "last_seen": _moment(r["last_event"]),
            "top_feature": top.get(r["end_user_id"]),
        }
        for r in rows
    ]


class _RowsTotal(Func):
    """`COUNT(*) OVER ()`: the number of groups of a grouped query, on every row, so a page
    and the total come from one aggregation instead of two."""

    template = "COUNT(*) OVER ()"
    output_field = IntegerField()
    contains_aggregate = False
    contains_over_clause = True

    def __init__(self) -> None:
        super().__init__()

    def get_group_by_cols(self) -> list[Any]:
        return []


@cached
def user_activity_page(
    org: Organization,
    *,
    days: int = 30,
    search: str = "",
    sort: str = "-events",
    page: int = 1,
    page_size: int | None = 50,
    only_member: User | None = None,
    start: date | None = None,
    end: date | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per end user active in the last `days` UTC days (today included), from the per-user
    rollups: events, avg session, first/last seen, top feature. `search` matches the
    external id or e-mail; `only_member` (a User) limits the rows to the end users that
    are that member's own profiles (a member sees only themself). `page_size=None` returns every row (CSV
    export). `start`..`end` replaces the last `days` when given; `filters` (a feature, the
    person filters) narrow the rows, a feature filter counting that feature's events only.
    Returns `{count, page, page_size, results}`."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    first = start or today() - timedelta(days=days - 1)
    period = Q(date__gte=first) & (Q(date__lte=end) if end else Q())
    people = Q()
    if only_member is not None:
        people &= Q(end_user__member=only_member)
    if search:
        # The organisation on the end users' side too: the planner then matches the text
        # among this organisation's users only, not every tenant's.
        people &= Q(end_user__organization=org) & (
            Q(end_user__external_id__icontains=search) | Q(end_user__email__icontains=search)
        )
    days_rows = user_rows(org, filters).filter(people, period)
    feature_rows = filters_apply(DailyUserFeatureUsage.objects.filter(organization=org), filters).filter(period)
    descending = sort.startswith("-")
    field = _USER_SORT_FIELDS[sort.lstrip("-")]
    order = F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
    grouped = _user_rows(days_rows).order_by(order, "end_user_id")
    if page_size is not None and sort == "-events" and ranked.answers(filters) and page * page_size <= RANKED_ROWS_MAX:
        # Without an end: every day rolled up, events up to a day ahead (ingestion's limit) too.
        last = end or today() + timedelta(days=1)
        bounds = ranked.user_bounds(
            org, start=first, end=last, filters=filters, people=people, text_search=bool(search)
        )
        offset = (page - 1) * page_size
        rows = ranked.top_rows(org, bounds=bounds, start=first, end=last, limit=offset + page_size, offset=offset)
        return _ranked_page(org, rows, feature_rows, bounds.count, page, page_size)
    if page_size is not None and not field.startswith("end_user__"):
        # Sorted by figures of the rows alone: grouped by user id only (grouping by the
        # profile's columns too sorts every user-day row with them), profiles of the page after.
        return _figures_page(org, days_rows, feature_rows, order, page, page_size)
    if page_size is None:
        rows = list(grouped)
        count = len(rows)
        top = _top_features(feature_rows.filter(people))
    else:
        offset = (page - 1) * page_size
        rows = list(grouped.annotate(rows_total=_RowsTotal())[offset : offset + page_size])
        # Past the last page there is no row to carry the total: count separately then.
        count = rows[0]["rows_total"] if rows else (grouped.count() if page > 1 else 0)
        top = _top_features(feature_rows.filter(end_user_id__in=[r["end_user_id"] for r in rows])) if rows else {}
    return {"count": count, "page": page, "page_size": page_size, "results": _shape_user_rows(rows, top)}


def _figures_page(
    org: Organization,
    days_rows: QuerySet[Any],
    feature_rows: QuerySet[DailyUserFeatureUsage],
    order: Any,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    """`user_activity_page` sorted by events, average session or last seen: one grouped
    query for the page and the total, the page's profiles, their top features."""
    grouped = (
        days_rows.values("end_user_id")
        .annotate(
            events=Sum("event_count"),
            avg_session_duration=Cast(Sum("total_session_duration"), FloatField())
            / NullIf(Cast(Sum("timed_events"), FloatField()), 0.0),
            **_event_bounds(days_rows),
        )
        .order_by(order, "end_user_id")
    )
    offset = (page - 1) * page_size
    rows = list(grouped.annotate(rows_total=_RowsTotal())[offset : offset + page_size])
    count = rows[0]["rows_total"] if rows else (grouped.count() if page > 1 else 0)
    if not rows:
        return {"count": count, "page": page, "page_size": page_size, "results": []}
    ids = [r["end_user_id"] for r in rows]
    _with_profiles(org, rows)
    top = _top_features(feature_rows.filter(end_user_id__in=ids))
    return {"count": count, "page": page, "page_size": page_size, "results": _shape_user_rows(rows, top)}


def _ranked_page(
    org: Organization,
    rows: list[dict[str, Any]],
    feature_rows: QuerySet[DailyUserFeatureUsage],
    count: int,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    """A page of `ranked.top_rows` rows shaped as `user_activity_page` answers it."""
    _with_averages(rows)
    _with_profiles(org, rows)
    top = _top_features(feature_rows.filter(end_user_id__in=[r["end_user_id"] for r in rows])) if rows else {}
    return {"count": count, "page": page, "page_size": page_size, "results": _shape_user_rows(rows, top)}


def _with_averages(rows: list[dict[str, Any]]) -> None:
    """Adds each row's average session (Σ durations / Σ timed events, the one rule)."""
    for r in rows:
        r["avg_session_duration"] = r["duration"] / r["timed"] if r["timed"] else None


def _with_profiles(org: Organization, rows: list[dict[str, Any]]) -> None:
    """Adds each row's external id, e-mail and first seen (one query for all)."""
    ids = [r["end_user_id"] for r in rows]
    profiles = {
        p["id"]: p
        for p in EndUser.objects.filter(organization=org, pk__in=ids).values("id", "external_id", "email", "first_seen")
    }
    for r in rows:
        profile = profiles[r["end_user_id"]]
        r["end_user__external_id"] = profile["external_id"]
        r["end_user__email"] = profile["email"]
        r["end_user__first_seen"] = profile["first_seen"]


@cached
def top_users(
    org: Organization, *, limit: int = 10, start: date, end: date, filters: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The `limit` end users with most events in start..end (same row shape as user
    activity): ranked from the weekly totals (`ranked`), or under a feature filter by
    the per-user feature rows grouped by user id alone; only the winners joined to their
    profile. `filters` narrow the rows (a feature: its events)."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    if ranked.answers(filters):
        bounds = ranked.user_bounds(org, start=start, end=end, filters=filters)
        rows = ranked.top_rows(org, bounds=bounds, start=start, end=end, limit=limit)
    else:
        days_rows = user_rows(org, filters).filter(date__gte=start, date__lte=end)
        rows = list(
            days_rows.values("end_user_id")
            .annotate(
                events=Sum("event_count"),
                duration=Sum("total_session_duration"),
                timed=Sum("timed_events"),
                **_event_bounds(days_rows),
            )
            .order_by("-events", "end_user_id")[:limit]
        )
    if not rows:
        return []
    ids = [r["end_user_id"] for r in rows]
    _with_profiles(org, rows)
    _with_averages(rows)
    feature_rows = filters_apply(DailyUserFeatureUsage.objects.filter(organization=org), filters).filter(
        date__gte=start, date__lte=end, end_user_id__in=ids
    )
    return _shape_user_rows(rows, _top_features(feature_rows))
