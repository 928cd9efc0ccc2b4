"""Read side of analytics: plain functions taking an organisation and returning plain data.

The API, the pages, the insights engine and the tests all call these. Arguments are assumed
valid (see `analytics.params` for parsing); ranges are inclusive UTC days. Every function
runs a fixed number of queries, whatever the number of rows it returns.

Long ranges read the daily rollups; raw events are only scanned where a rollup cannot
answer (distinct users over several days, demographic filters, retention, funnels), always
through the (organization, …, timestamp) indexes.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Avg, Count, Exists, F, Func, IntegerField, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import TruncDate, TruncWeek

from core.exceptions import NotFound
from telemetry.models import EndUser, Feature, UsageEvent

from .models import DailyFeatureUsage, DailyOrgUsage
from .params import parse_id, today
from .rollup import generation

EPOCH = date(1970, 1, 1)
TIMELINE_LIMIT = 200
# Events of one end user without a session id belong to the same visit while they are
# less than this far apart (the usual web-analytics session timeout).
SESSION_GAP = timedelta(minutes=30)


# --- helpers -----------------------------------------------------------------------------


def _key_part(value):
    """A cache-key component: model instances by pk; None entries of dicts dropped, so
    `filters={"feature": None}` and no filters share one key."""
    if isinstance(value, dict):
        return sorted((k, _key_part(v)) for k, v in value.items() if v is not None) or None
    return getattr(value, "pk", value)


def cached(fn=None, *, ttl_seconds=None):
    """Cache a dashboard query per organisation and rollup generation. Every rollup of the
    organisation bumps the generation, so all its cached figures go at once; dashboards are
    as fresh as the last rollup (hourly for today), which is what their rollup-based totals
    show anyway. `ANALYTICS_CACHE_TTL` (seconds, default 300; 0 disables) bounds the rest;
    `ttl_seconds` overrides that bound for results that change only with a rollup and are
    dear to recompute (insights charts, forecasts). `fn.uncached` is the plain function."""
    if fn is None:
        return functools.partial(cached, ttl_seconds=ttl_seconds)

    @functools.wraps(fn)
    def wrapper(org, *args, **kwargs):
        ttl = settings.ANALYTICS_CACHE_TTL
        if not ttl:
            return fn(org, *args, **kwargs)
        named = sorted((k, _key_part(v)) for k, v in kwargs.items() if _key_part(v) is not None)
        parts = repr(([_key_part(a) for a in args], named))
        digest = hashlib.sha256(parts.encode()).hexdigest()[:32]
        key = f"analytics:q:{org.pk}:{generation(org.pk)}:{fn.__name__}:{digest}"
        value = cache.get(key)
        if value is None:
            value = fn(org, *args, **kwargs)
            cache.set(key, value, ttl_seconds or ttl)
        return value

    wrapper.uncached = fn
    return wrapper


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, end+1 00:00 UTC) for inclusive day ranges."""
    return day_start(start), day_start(end + timedelta(days=1))


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of equal length just before start..end."""
    length = (end - start).days + 1
    prev_end = start - timedelta(days=1)
    return prev_end - timedelta(days=length - 1), prev_end


def change_pct(value, previous):
    """% change, or None when there is nothing to compare with (previous is 0)."""
    if not previous:
        return None
    return round((value - previous) / previous * 100, 1)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _round(value, digits=2):
    return round(float(value or 0), digits)


def _pct(part, whole):
    return round(part / whole * 100, 1) if whole else 0.0


def _feature_id(feature):
    return getattr(feature, "pk", feature)


def _db_datetime(value: datetime):
    """A datetime as the backend stores it, for raw SQL parameters (SQLite keeps text)."""
    return connection.ops.adapt_datetimefield_value(value)


def _day_number_sql(column: str) -> str:
    """SQL for the UTC day of a timestamp column as an integer (days since 1970-01-01)."""
    if connection.vendor == "postgresql":
        return f"((({column}) AT TIME ZONE 'UTC')::date - DATE '1970-01-01')"
    return f"CAST(julianday({column}) - 2440587.5 AS INTEGER)"


def _plus_days_sql(column: str) -> tuple[str, str]:
    """SQL adding a number of days (one parameter) to a timestamp column, and the way to
    format that parameter."""
    if connection.vendor == "postgresql":
        return f"({column} + %s * INTERVAL '1 day')", "int"
    return f"datetime({column}, %s)", "modifier"


# --- usage summary ---------------------------------------------------------------------


def _distinct_users(org, start: date, end: date, feature_id=None) -> int:
    """End users with at least one event in the range: one index probe per end user on
    (organization, end_user, timestamp) instead of sorting every event of the range."""
    lo, hi = bounds(start, end)
    events = UsageEvent.objects.filter(organization=org, end_user=OuterRef("pk"), timestamp__gte=lo, timestamp__lt=hi)
    if feature_id is not None:
        events = events.filter(feature_id=feature_id)
    return EndUser.objects.filter(organization=org).filter(Exists(events)).count()


def session_average(total_duration, timed_events) -> float:
    """The one average-session rule, for every range and filter: Σ session durations / Σ
    events that carry a duration (never a mean of daily means, which weighs a quiet day like
    a busy one)."""
    return _round(total_duration / timed_events) if timed_events else 0.0


def _kpi(value, previous):
    return {"value": value, "previous": previous, "change_pct": change_pct(value, previous)}


def _summary_raw(org, start, end, prev_start, prev_end, feature_id, age, gender) -> dict:
    """The summary straight from raw events, for demographic filters (the rollups carry no
    age or gender): one conditional aggregate over both periods."""
    qs = _raw_events(org, prev_start, end, feature_id, age, gender)
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
    } | {"avg_session_duration": _kpi(_round(t["cur_duration"]), _round(t["prev_duration"]))}


@cached
def usage_summary(org, start: date, end: date, filters=None) -> dict:
    """KPIs for start..end, each `{value, previous, change_pct}` against the previous period
    of equal length. `filters` may hold `feature` (a Feature or its id), `age` (band) and
    `gender`; the demographic ones are answered from raw events, the rest from rollups."""
    filters = filters or {}
    feature_id = _feature_id(filters.get("feature"))
    prev_start, prev_end = previous_period(start, end)
    head = {"start": start, "end": end, "previous_start": prev_start, "previous_end": prev_end}
    if filters.get("age") or filters.get("gender"):
        return head | _summary_raw(
            org, start, end, prev_start, prev_end, feature_id, filters.get("age"), filters.get("gender")
        )
    cur = Q(date__gte=start, date__lte=end)
    prev = Q(date__gte=prev_start, date__lte=prev_end)

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


# --- features --------------------------------------------------------------------------


@cached
def feature_usage(org, start: date, end: date) -> list[dict]:
    """Per feature, from the rollups: events, average daily active users over the days of the
    range, avg session duration, share of all events (%) and change vs the previous period.
    Features without events in either period are left out."""
    prev_start, prev_end = previous_period(start, end)
    cur = Q(date__gte=start, date__lte=end)
    rows = (
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
    results = []
    for r in rows:
        events = r["events"] or 0
        results.append(
            {
                "feature_id": r["feature_id"],
                "feature_key": r["feature__key"],
                "feature_name": r["feature__name"],
                "events": events,
                "avg_daily_active_users": _round((r["dau"] or 0) / days),
                "avg_session_duration": session_average(r["duration"] or 0, r["timed"]),
                "share": _pct(events, total),
                "previous_events": r["prev_events"] or 0,
                "change_pct": change_pct(events, r["prev_events"] or 0),
            }
        )
    results.sort(key=lambda r: (-r["events"], r["feature_key"]))
    return results


@cached
def feature_sparklines(org, start: date, end: date) -> dict[int, list[int]]:
    """{feature_id: [daily events, zero-filled, start..end]} for features with events."""
    days = _days(start, end)
    index = {day: i for i, day in enumerate(days)}
    lines: dict[int, list[int]] = {}
    rows = DailyFeatureUsage.objects.filter(organization=org, date__gte=start, date__lte=end).values_list(
        "feature_id", "date", "event_count"
    )
    for feature_id, day, count in rows:
        lines.setdefault(feature_id, [0] * len(days))[index[day]] = count
    return lines


def feature_get(org, feature_id) -> Feature:
    """One feature of `org`; another organisation's or an unknown id is NotFound."""
    pk = parse_id(feature_id)
    if pk is None:
        raise NotFound("Feature not found.")
    feature = Feature.objects.filter(organization=org, pk=pk).first()
    if feature is None:
        raise NotFound("Feature not found.")
    return feature


@cached
def feature_figures(org, *, feature, start: date, end: date, interval="day") -> dict:
    """One feature over start..end as its detail page shows it: `events`, active users per
    `interval` bucket (`avg_active_users`, `peak_active_users`, as charted), the average
    session by `session_average` over the whole range, and the charted `points`
    ([{date, events, active_users}], zero-filled)."""
    feature_id = _feature_id(feature)
    series = {"interval": interval, "start": start, "end": end, "feature": feature_id}
    events = timeseries.uncached(org, metric="events", **series)["points"]
    active = [p["value"] for p in timeseries.uncached(org, metric="active_users", **series)["points"]]
    totals = DailyFeatureUsage.objects.filter(
        organization=org, feature_id=feature_id, date__gte=start, date__lte=end
    ).aggregate(duration=Sum("total_session_duration"), timed=Sum("timed_events"))
    return {
        "events": sum(p["value"] for p in events),
        "avg_active_users": sum(active) / len(active) if active else 0,
        "peak_active_users": max(active, default=0),
        "avg_session_duration": session_average(totals["duration"] or 0, totals["timed"]),
        "points": [
            {"date": p["date"], "events": p["value"], "active_users": a} for p, a in zip(events, active, strict=True)
        ],
    }


# --- end users -------------------------------------------------------------------------

_USER_SORT_FIELDS = {
    "events": "events",
    "avg_session_duration": "avg_session_duration",
    "last_seen": "last_event",
    "first_seen": "end_user__first_seen",
    "user_id": "end_user__external_id",
    "email": "end_user__email",
}


def _user_rows(events_qs):
    """Events grouped per end user (anonymous events have no user row)."""
    return (
        events_qs.filter(end_user__isnull=False)
        .values("end_user_id", "end_user__external_id", "end_user__email", "end_user__first_seen")
        .annotate(
            events=Count("id"),
            avg_session_duration=Avg("session_duration"),
            first_event=Min("timestamp"),
            last_event=Max("timestamp"),
        )
    )


def _top_features(events_qs) -> dict[int, str]:
    """{end_user_id: key of the feature with most events} in one grouped query."""
    best: dict[int, tuple[int, str]] = {}
    rows = events_qs.values("end_user_id", "feature__key").annotate(n=Count("id"))
    for row in rows:
        current = best.get(row["end_user_id"])
        candidate = (row["n"], row["feature__key"])
        if current is None or candidate[0] > current[0] or (candidate[0] == current[0] and candidate[1] < current[1]):
            best[row["end_user_id"]] = candidate
    return {uid: key for uid, (_, key) in best.items()}


def _shape_user_rows(rows, top) -> list[dict]:
    return [
        {
            "user_id": r["end_user__external_id"],
            "email": r["end_user__email"],
            "events": r["events"],
            "avg_session_duration": _round(r["avg_session_duration"]),
            "first_seen": min(filter(None, (r["end_user__first_seen"], r["first_event"]))),
            "last_seen": r["last_event"],
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

    def __init__(self):
        super().__init__()

    def get_group_by_cols(self):
        return []


@cached
def user_activity_page(org, *, days=30, search="", sort="-events", page=1, page_size=50, only_account=None) -> dict:
    """Per end user active in the last `days` days: events, avg session, first/last seen,
    top feature. `search` matches the external id or e-mail; `only_account` (a User) limits
    the rows to the end users linked to that account (a member sees only themself).
    `page_size=None` returns every row (CSV export). Returns `{count, page, page_size, results}`."""
    from django.utils import timezone

    events = UsageEvent.objects.filter(organization=org, timestamp__gte=timezone.now() - timedelta(days=days))
    if only_account is not None:
        events = events.filter(end_user__account=only_account)
    if search:
        events = events.filter(Q(end_user__external_id__icontains=search) | Q(end_user__email__icontains=search))
    descending = sort.startswith("-")
    field = _USER_SORT_FIELDS[sort.lstrip("-")]
    order = F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True)
    grouped = _user_rows(events).order_by(order, "end_user_id")
    if page_size is None:
        rows = list(grouped)
        count = len(rows)
        top = _top_features(events.filter(end_user__isnull=False))
    else:
        offset = (page - 1) * page_size
        rows = list(grouped.annotate(rows_total=_RowsTotal())[offset : offset + page_size])
        # Past the last page there is no row to carry the total: count separately then.
        count = rows[0]["rows_total"] if rows else (grouped.count() if page > 1 else 0)
        top = _top_features(events.filter(end_user_id__in=[r["end_user_id"] for r in rows])) if rows else {}
    return {"count": count, "page": page, "page_size": page_size, "results": _shape_user_rows(rows, top)}


@cached
def top_users(org, *, limit=10, start: date, end: date) -> list[dict]:
    """The `limit` end users with most events in start..end (same row shape as user activity).
    Events are grouped by user id alone and only the winners are joined to their profile."""
    lo, hi = bounds(start, end)
    events = UsageEvent.objects.filter(organization=org, timestamp__gte=lo, timestamp__lt=hi)
    rows = list(
        events.filter(end_user__isnull=False)
        .values("end_user_id")
        .annotate(
            events=Count("id"),
            avg_session_duration=Avg("session_duration"),
            first_event=Min("timestamp"),
            last_event=Max("timestamp"),
        )
        .order_by("-events", "end_user_id")[:limit]
    )
    if not rows:
        return []
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
    return _shape_user_rows(rows, _top_features(events.filter(end_user_id__in=ids)))


def _session_groups(events) -> list[dict]:
    """Newest-first events → visits: consecutive events sharing a session id, or without one
    and less than SESSION_GAP apart."""
    groups: list[dict] = []
    for e in events:
        last = groups[-1] if groups else None
        same = (
            last is not None
            and last["session_id"] == e.session_id
            and (e.session_id or last["start"] - e.timestamp <= SESSION_GAP)
        )
        item = {
            "uuid": e.uuid,
            "timestamp": e.timestamp,
            "feature_key": e.feature.key,
            "feature_name": e.feature.name,
            "event_type": e.event_type,
            "session_duration": e.session_duration,
        }
        if same:
            last["events"].append(item)
            last["start"] = e.timestamp
        else:
            groups.append({"session_id": e.session_id, "start": e.timestamp, "end": e.timestamp, "events": [item]})
    for g in groups:
        g["event_count"] = len(g["events"])
    return groups


def end_user_is_own(org, external_id: str, account) -> bool:
    """Whether end user `external_id` of `org` is linked to the login `account`."""
    if "\x00" in external_id:  # never stored (ingestion refuses it); PostgreSQL cannot compare it
        return False
    return EndUser.objects.filter(organization=org, external_id=external_id, account=account).exists()


def end_user_detail(org, external_id: str) -> dict:
    """Profile, totals, top features and the newest events grouped into sessions."""
    if "\x00" in external_id:  # never stored (ingestion refuses it); PostgreSQL cannot compare it
        raise NotFound("End user not found.")
    user = EndUser.objects.filter(organization=org, external_id=external_id).first()
    if user is None:
        raise NotFound("End user not found.")
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
    recent = list(events.select_related("feature").order_by("-timestamp", "-id")[:TIMELINE_LIMIT])
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
            "avg_session_duration": _round(totals["avg_session_duration"]),
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
        "timeline": _session_groups(recent),
    }


# --- timeseries ------------------------------------------------------------------------


def _buckets(start: date, end: date, interval: str) -> list[date]:
    if interval == "day":
        return _days(start, end)
    first, last = _monday(start), _monday(end)
    return [first + timedelta(days=7 * i) for i in range((last - first).days // 7 + 1)]


def _as_date(value) -> date:
    return value.date() if isinstance(value, datetime) else value


@cached
def timeseries(org, *, metric="events", interval="day", start: date, end: date, feature=None, age=None, gender=None):
    """`{metric, interval, start, end, points: [{date, value}]}`, one point per day or week
    (weeks start on Monday), zero-filled. Reads rollups unless a demographic filter applies
    or weekly distinct users are asked (neither can be summed from daily rows)."""
    feature_id = _feature_id(feature)
    buckets = _buckets(start, end, interval)
    use_raw = bool(age or gender) or (interval == "week" and metric == "active_users")
    values = (
        _series_raw(org, metric, interval, start, end, feature_id, age, gender)
        if use_raw
        else (_series_rollup(org, metric, interval, start, end, feature_id))
    )
    digits = 2 if metric == "avg_session_duration" else 0
    points = []
    for bucket in buckets:
        value = values.get(bucket, 0)
        points.append({"date": bucket, "value": round(float(value), 2) if digits else int(value)})
    return {"metric": metric, "interval": interval, "start": start, "end": end, "points": points}


def _series_rollup(org, metric, interval, start, end, feature_id) -> dict:
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
        week = _monday(day)
        events[week] += count
        duration[week] += total
        timed[week] += n
    if metric == "events":
        return dict(events)
    return {week: duration[week] / timed[week] for week in timed if timed[week]}


def _raw_events(org, start, end, feature_id, age, gender):
    """The organisation's raw events of the days start..end, narrowed by the optional
    feature, age band and gender filters."""
    lo, hi = bounds(start, end)
    qs = UsageEvent.objects.filter(organization=org, timestamp__gte=lo, timestamp__lt=hi)
    if feature_id is not None:
        qs = qs.filter(feature_id=feature_id)
    if age:
        qs = qs.filter(_age_filter(age))
    if gender:
        qs = qs.filter(end_user__gender=gender)
    return qs


def _age_filter(age):
    return {
        "<18": Q(end_user__age__lt=18),
        "18-40": Q(end_user__age__gte=18, end_user__age__lte=40),
        ">40": Q(end_user__age__gt=40),
    }[age]


def _series_raw(org, metric, interval, start, end, feature_id, age, gender) -> dict:
    qs = _raw_events(org, start, end, feature_id, age, gender)
    trunc = TruncDate("timestamp", tzinfo=UTC) if interval == "day" else TruncWeek("timestamp", tzinfo=UTC)
    aggregate = {
        "events": Count("id"),
        "active_users": Count("end_user_id", distinct=True),
        "avg_session_duration": Avg("session_duration"),
    }[metric]
    rows = qs.annotate(bucket=trunc).values("bucket").annotate(value=aggregate).values_list("bucket", "value")
    return {_as_date(bucket): value or 0 for bucket, value in rows}


# --- retention -------------------------------------------------------------------------

RETENTION_DAYS = (1, 7, 30)


def retention_sql(org, *, first: date, end: date) -> tuple[str, list]:
    """The retention statement for cohorts from the week of `first` to `end`: rows of
    (kind, cohort week, k, users) — kind 0: cohort sizes; 1: users active in week k of their
    cohort; 2: users active exactly k ∈ {1, 7, 30} days after their first day.

    Its cost cannot depend on table statistics: without them (a fresh, never-ANALYZEd table)
    or with stale ones the planner once nested a scan of every event of the period inside a
    loop over the cohort, 193 s on 200,000 events. On PostgreSQL the period's events meet the
    cohort in a FULL JOIN, which PostgreSQL can only hash or merge, never loop, so every plan
    is one pass over the period's events; the join sits alone in its CTE, because a WHERE on
    it would turn it back into an inner join. SQLite plans by rules: its CROSS JOIN makes the
    cohort the outer loop, each member one range of (organization, end_user, timestamp)."""
    lo, hi = bounds(first, end)
    base = (first - EPOCH).days
    d0 = _day_number_sql("first_seen")
    d = _day_number_sql("e.timestamp")
    cohort = f"""SELECT id, {d0} AS d0 FROM telemetry_enduser
        WHERE organization_id = %s AND first_seen >= %s AND first_seen < %s"""
    period = "e.organization_id = %s AND e.timestamp >= %s AND e.timestamp < %s"
    if connection.vendor == "postgresql":
        ctes = f"""cohort AS MATERIALIZED ({cohort}),
            act AS MATERIALIZED (
                SELECT DISTINCT c.id AS uid, c.d0, {d} AS d
                FROM (SELECT end_user_id, timestamp FROM telemetry_usageevent e
                      WHERE {period} AND e.end_user_id IS NOT NULL) e
                FULL JOIN cohort c ON c.id = e.end_user_id
            )"""
    else:
        ctes = f"""cohort AS ({cohort}),
            act AS (
                SELECT DISTINCT c.id AS uid, c.d0, {d} AS d
                FROM cohort c CROSS JOIN telemetry_usageevent e WHERE e.end_user_id = c.id AND {period}
            )"""
    # Rows of the join without a cohort member or without an event have a NULL uid or day:
    # the comparisons below leave them out.
    sql = f"""
        WITH {ctes}
        SELECT 0 AS kind, (d0 - %s) / 7 AS cw, 0 AS k, COUNT(*) FROM cohort GROUP BY 1, 2
        UNION ALL
        SELECT 1, (d0 - %s) / 7, (d - %s) / 7 - (d0 - %s) / 7, COUNT(DISTINCT uid)
        FROM act WHERE d >= d0 GROUP BY 1, 2, 3
        UNION ALL
        SELECT 2, (d0 - %s) / 7, d - d0, COUNT(*) FROM act WHERE d - d0 IN (1, 7, 30) GROUP BY 1, 2, 3
    """
    lo_db, hi_db = _db_datetime(lo), _db_datetime(hi)
    return sql, [org.pk, lo_db, hi_db, org.pk, lo_db, hi_db, base, base, base, base, base]


@cached
def retention(org, *, weeks=12, end: date | None = None) -> dict:
    """Weekly cohorts of end users by first-seen week (Monday-based, the last `weeks` weeks up
    to `end`): size, D1/D7/D30 (% of the cohort with an event exactly 1, 7, 30 days after
    their first day; None until the whole cohort could have got there) and the grid of % of
    the cohort active in each week since its start. One statement (`retention_sql`), grouped
    in SQL."""
    end = end or today()
    first = _monday(end) - timedelta(days=7 * (weeks - 1))
    end_day = (end - EPOCH).days
    sql, params = retention_sql(org, first=first, end=end)
    sizes: dict[int, int] = {}
    grid: dict[int, dict[int, int]] = defaultdict(dict)
    days: dict[int, dict[int, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for kind, cw, k, n in cursor.fetchall():
            if kind == 0:
                sizes[cw] = n
            elif kind == 1:
                grid[cw][k] = n
            else:
                days[cw][k] = n
    cohorts = []
    for cw in range(weeks):
        start = first + timedelta(days=7 * cw)
        size = sizes.get(cw, 0)
        cohort_last_day = min((start - EPOCH).days + 6, end_day)
        row = {"cohort_start": start, "size": size}
        for n in RETENTION_DAYS:
            measurable = cohort_last_day + n <= end_day
            row[f"d{n}"] = _pct(days[cw].get(n, 0), size) if measurable else None
        row["weeks"] = [_pct(grid[cw].get(k, 0), size) for k in range(weeks - cw)]
        cohorts.append(row)
    return {"weeks": weeks, "end": end, "cohorts": cohorts}


def retention_averages(cohorts: list[dict]) -> dict:
    """Across `retention()` cohorts: `users` (their total size) and D1/D7/D30 weighted by
    cohort size, over the cohorts that have users and a measurable value (None when none
    has), so a cohort of 3 users does not count as much as one of 3,000."""
    sized = [c for c in cohorts if c["size"]]

    def weighted(key):
        values = [(c[key], c["size"]) for c in sized if c.get(key) is not None]
        weight = sum(size for _, size in values)
        return sum(v * size for v, size in values) / weight if weight else None

    return {"users": sum(c["size"] for c in sized)} | {f"d{n}": weighted(f"d{n}") for n in RETENTION_DAYS}


# --- funnel ----------------------------------------------------------------------------


@cached
def funnel(org, *, steps: list[str], window_days=7, start: date, end: date) -> dict:
    """Ordered funnel counted per end user: a user enters at their first event of step 1 in
    start..end; each later step counts when that user has a matching event after the previous
    step and within `window_days` of entering. A step naming a feature key of `org` matches
    that feature's events, any other step the events of that event type.

    One SQL statement: the candidate events (any step's feature or type, one index range per
    feature) are read once into the `ev` CTE, then one CTE per step joins the previous
    step's users to it."""
    feature_ids = dict(Feature.objects.filter(organization=org, key__in=steps).values_list("key", "id"))
    lo, hi = bounds(start, end)
    horizon = hi + timedelta(days=window_days)
    window_sql, window_kind = _plus_days_sql("p.t0")
    window_param = window_days if window_kind == "int" else f"+{window_days} days"

    def placeholders(values):
        return ", ".join(["%s"] * len(values))

    def match(key):
        if key in feature_ids:
            return "e.fid = %s", [feature_ids[key]]
        return "e.et = %s", [key]

    by_feature = sorted({feature_ids[k] for k in steps if k in feature_ids})
    by_type = sorted({k for k in steps if k not in feature_ids})
    scope = []
    if by_feature:
        scope.append(f"e.feature_id IN ({placeholders(by_feature)})")
    if by_type:
        scope.append(f"e.event_type IN ({placeholders(by_type)})")
    ctes = [
        f"""ev AS (
            SELECT e.end_user_id AS uid, e.timestamp AS ts, e.feature_id AS fid, e.event_type AS et
            FROM telemetry_usageevent e
            WHERE e.organization_id = %s AND e.end_user_id IS NOT NULL
              AND e.timestamp >= %s AND e.timestamp < %s AND ({" OR ".join(scope)}))"""
    ]
    params = [org.pk, _db_datetime(lo), _db_datetime(horizon), *by_feature, *by_type]
    cond, cond_params = match(steps[0])
    ctes.append(
        f"""s0 AS (
            SELECT e.uid, MIN(e.ts) AS t0, MIN(e.ts) AS t FROM ev e
            WHERE e.ts < %s AND {cond} GROUP BY e.uid)"""
    )
    params += [_db_datetime(hi), *cond_params]
    for i, key in enumerate(steps[1:], start=1):
        cond, cond_params = match(key)
        ctes.append(
            f"""s{i} AS (
            SELECT p.uid, p.t0, MIN(e.ts) AS t
            FROM s{i - 1} p JOIN ev e ON e.uid = p.uid
            WHERE e.ts > p.t AND e.ts <= {window_sql} AND {cond}
            GROUP BY p.uid, p.t0)"""
        )
        params += [window_param, *cond_params]
    counts_sql = ", ".join(f"(SELECT COUNT(*) FROM s{i})" for i in range(len(steps)))
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT {counts_sql}", params)
        counts = list(cursor.fetchone())
    result = []
    for i, (key, users) in enumerate(zip(steps, counts, strict=True)):
        result.append(
            {
                "step": i + 1,
                "key": key,
                "kind": "feature" if key in feature_ids else "event_type",
                "users": users,
                "conversion_from_prev": 100.0 if i == 0 and users else (_pct(users, counts[i - 1]) if i else 0.0),
                "conversion_from_start": _pct(users, counts[0]),
            }
        )
    return {"window_days": window_days, "start": start, "end": end, "steps": result}
