"""End users: the activity table and the top users (from the per-user rollups), and one end
user's detail with its visits (that user's own events: one index range)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import Avg, Count, F, FloatField, Func, IntegerField, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, NullIf

from core.days import day_start, today
from core.exceptions import DomainError, NotFound
from telemetry.models import EndUser, UsageEvent
from tenants.models import Organization, User

from ..models import DailyUserFeatureUsage
from . import ranked
from .cache import cached
from .common import rounded_or_none
from .filters import filters_apply
from .summary import user_rows

TIMELINE_LIMIT = 200
# Events of one end user without a session id belong to the same visit while they are
# less than this far apart (the usual web-analytics session timeout).
SESSION_GAP = timedelta(minutes=30)
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


def _session_groups(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest-first events (`_TIMELINE_FIELDS` rows) → visits: consecutive events sharing a
    session id, or without one and less than SESSION_GAP apart."""
    groups: list[dict[str, Any]] = []
    for e in events:
        last = groups[-1] if groups else None
        session_id, timestamp = e["session_id"], e["timestamp"]
        same = (
            last is not None
            and last["session_id"] == session_id
            and (session_id or last["start"] - timestamp <= SESSION_GAP)
        )
        item = {
            "uuid": e["uuid"],
            "timestamp": timestamp,
            "feature_key": e["feature__key"],
            "feature_name": e["feature__name"],
            "event_type": e["event_type"],
            "session_duration": e["session_duration"],
        }
        if same and last is not None:
            last["events"].append(item)
            last["start"] = timestamp
        else:
            groups.append({"session_id": session_id, "start": timestamp, "end": timestamp, "events": [item]})
    for g in groups:
        g["event_count"] = len(g["events"])
    return groups


def end_user_is_own(org: Organization, external_id: str, member: User) -> bool:
    """Whether end user `external_id` of `org` is the own profile of the platform `member`."""
    if "\x00" in external_id:  # never stored (ingestion refuses it); PostgreSQL cannot compare it
        return False
    return EndUser.objects.filter(organization=org, external_id=external_id, member=member).exists()


def _end_user(org: Organization, external_id: str) -> EndUser:
    if "\x00" in external_id:  # never stored (ingestion refuses it); PostgreSQL cannot compare it
        raise NotFound("End user not found.")
    user = EndUser.objects.filter(organization=org, external_id=external_id).first()
    if user is None:
        raise NotFound("End user not found.")
    return user


_TIMELINE_FIELDS = (
    "id",
    "uuid",
    "timestamp",
    "session_id",
    "event_type",
    "session_duration",
    "feature__key",
    "feature__name",
)


def _timeline_page(org: Organization, user: EndUser, before: UUID | None) -> dict[str, Any]:
    """Up to TIMELINE_LIMIT events of `user`, newest first, older than the event `before`
    (an event uuid, as `timeline_next` gives it) when given, grouped into sessions.

    Paged by key (timestamp, id), so a page costs the same however far back it is. A session
    cut by a page boundary goes on at the top of the next page, marked `continued`."""
    events = UsageEvent.objects.filter(organization=org, end_user=user)
    # Plain rows, not model instances: a page of 200 events (and their features) built as
    # instances cost more than the index range that reads them.
    page = events.order_by("-timestamp", "-id").values(*_TIMELINE_FIELDS)
    cursor = None
    if before is not None:
        cursor = events.filter(uuid=before).values("timestamp", "id", "session_id").first()
        if cursor is None:
            raise DomainError(
                "before: no event of this user has this id.", errors={"before": ["Unknown event for this user."]}
            )
        ts = cursor["timestamp"]
        page = page.filter(Q(timestamp__lt=ts) | Q(timestamp=ts, id__lt=cursor["id"]))
    rows = list(page[: TIMELINE_LIMIT + 1])
    more = len(rows) > TIMELINE_LIMIT
    rows = rows[:TIMELINE_LIMIT]
    groups = _session_groups(rows)
    for group in groups:
        group["continued"] = False
    if cursor is not None and groups:
        first = rows[0]
        groups[0]["continued"] = first["session_id"] == cursor["session_id"] and bool(
            first["session_id"] or cursor["timestamp"] - first["timestamp"] <= SESSION_GAP
        )
    return {
        "timeline": groups,
        "timeline_events": len(rows),
        "timeline_next": str(rows[-1]["uuid"]) if more else None,
    }


def end_user_timeline(org: Organization, external_id: str, *, before: UUID | None = None) -> dict[str, Any]:
    """One page of the timeline alone (`_timeline_page`): what "Older events" loads."""
    return _timeline_page(org, _end_user(org, external_id), before)


def end_user_detail(org: Organization, external_id: str, *, before: UUID | None = None) -> dict[str, Any]:
    """Profile, totals, top features and a page of the timeline (`_timeline_page`): the
    newest events grouped into sessions, or those older than the event `before`."""
    user = _end_user(org, external_id)
    events = UsageEvent.objects.filter(organization=org, end_user=user)
    totals = events.aggregate(
        events=Count("id"),
        sessions=Count("session_id", distinct=True, filter=~Q(session_id="")),
        avg_session_duration=Avg("session_duration"),
        features_used=Count("feature_id", distinct=True),
        first_event=Min("timestamp"),
        last_event=Max("timestamp"),
    )
    top = list(
        events.values("feature_id", "feature__key", "feature__name")
        .annotate(events=Count("id"))
        .order_by("-events", "feature__key")[:5]
    )
    return {
        "user_id": user.external_id,
        "email": user.email,
        "age": user.age,
        "gender": user.gender,
        "properties": user.properties,
        "first_seen": user.first_seen or totals["first_event"],
        "last_seen": user.last_seen or totals["last_event"],
        "totals": {
            "events": totals["events"],
            "sessions": totals["sessions"],
            "avg_session_duration": rounded_or_none(totals["avg_session_duration"]),
            "features_used": totals["features_used"],
        },
        "top_features": [
            {
                "feature_id": t["feature_id"],
                "feature_key": t["feature__key"],
                "feature_name": t["feature__name"],
                "events": t["events"],
            }
            for t in top
        ],
    } | _timeline_page(org, user, before)
