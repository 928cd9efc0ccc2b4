"""Breakdowns: a figure split by one dimension — feature, event type, age band, gender,
account (its external id; users without one are "(none)"), an end-user property
(`user.<name>`) or an event property (`event.<name>`) — as its top values and "other", for
usage-summary, timeseries and feature-usage.

Each dimension is read from the cheapest rows that carry it: features from the feature
rollups, age band and gender from the person-segment rollups and accounts from the account
rollups (events and session time, daily users) or the per-user rollups (distinct users, or a
filter the group rollup does not carry; distinct users per feature from the per-feature
active-day bitmasks), event type, event properties and user properties
from the dimension rollup (DailyDimensionUsage: events, session time, daily users) and
otherwise — a user-property or account filter, distinct users over a range or per week, a
feature's daily users per event value, a property the rollup has no row of — from the
per-user rollups or the range's raw events. Every function runs a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models.fields import CharField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, NullIf, TruncDate, TruncWeek

from telemetry.models import EndUser, Feature, UsageEvent
from tenants.models import Organization

from ..models import (
    DailyAccountUsage,
    DailyDimensionUsage,
    DailyFeatureUsage,
    DailySegmentUsage,
    DailyUserFeatureUsage,
    DailyUserUsage,
    UserActiveDays,
    UserFeatureActiveDays,
)
from ..rollup_dimensions import EVENTS_MARK, FOLDED, USERS_MARK
from . import active
from .cache import cached
from .common import bounds, days_between, feature_pk, week_monday
from .filters import (
    ROLLED_UP_MODELS,
    filters_apply,
    has_person_filter,
    person_filter,
    person_filters,
    rolled_up_model,
    rolled_up_rows,
)

BREAKDOWN_LIMIT = 10
OTHER = "other"
NONE = "(none)"
USER_PREFIX = "user."
EVENT_PREFIX = "event."
# Dimensions that are who the end user is (one value per user at a time).
PERSON_DIMENSIONS = ("age", "gender", "account")


@dataclass(frozen=True)
class _Source:
    rows: QuerySet[Any]
    key: Any
    raw: bool  # raw events (timestamp, one row per event) or daily rows (date, counters)

    def within(self, start: date, end: date) -> QuerySet[Any]:
        if self.raw:
            lo, hi = bounds(start, end)
            return self.rows.filter(timestamp__gte=lo, timestamp__lt=hi)
        return self.rows.filter(date__gte=start, date__lte=end)

    def bucket(self, interval: str) -> Any:
        day = TruncDate("timestamp") if self.raw else F("date")
        return day if interval == "day" else TruncWeek(day)

    def figures(self) -> dict[str, Any]:
        if self.raw:
            return {
                "events": Count("id"),
                "users": Count("end_user_id", distinct=True),
                "duration": Sum("session_duration"),
                "timed": Count("session_duration"),
            }
        figures: dict[str, Any] = {
            "events": Sum("event_count"),
            "duration": Sum("total_session_duration"),
            "timed": Sum("timed_events"),
        }
        if self.rows.model in (*ROLLED_UP_MODELS, DailyDimensionUsage):
            # Exact per day only (each user is in one segment a day): used for daily series.
            figures["users"] = Sum("active_users")
        elif self.rows.model is not DailyFeatureUsage:
            figures["users"] = Count("end_user_id", distinct=True)
        return figures


def _text(expr: Any) -> Any:
    """A dimension value as text, `(none)` where it is missing."""
    return Coalesce(NullIf(Cast(expr, CharField()), Value("")), Value(NONE), output_field=CharField())


_AGE_BAND = Case(
    When(end_user__age__lt=18, then=Value("<18")),
    When(end_user__age__lte=40, then=Value("18-40")),
    When(end_user__age__gt=40, then=Value(">40")),
    default=Value(NONE),
    output_field=CharField(),
)


def _group_model(dimension: str, filters: Mapping[str, Any]) -> Any:
    """The group rollup (segments or accounts) that carries both `dimension` and the person
    filters, or None: the person segments for age and gender, the accounts for an account;
    a feature breakdown under one of them reads that one's rows. None also when no person
    is involved (the feature rollups answer)."""
    if dimension in ("age", "gender"):
        wanted: Any = DailySegmentUsage
    elif dimension == "account":
        wanted = DailyAccountUsage
    elif dimension == "feature":
        return rolled_up_model(filters)
    else:
        return None
    given = rolled_up_model(filters)
    if given is None and has_person_filter(filters):
        return None  # a mix of person filters: only the per-user rows carry it
    return wanted if given in (None, wanted) else None


def _source(
    org: Organization,
    dimension: str,
    filters: Mapping[str, Any],
    *,
    users: bool,
    per_feature: bool,
    daily_users: bool = False,
    rolled_up: bool = True,
) -> _Source:
    """The rows that answer `dimension` under `filters` (see the module docstring); `users`:
    distinct users are asked (then per-user or raw rows, or segment or dimension rows for
    `daily_users`); `per_feature`: rows of one feature each (feature-usage); `rolled_up`:
    False skips the dimension rollup (a property it has no rows of)."""
    feature_id = feature_pk(filters.get("feature"))
    key: Any
    if rolled_up and _in_dimension_rollup(dimension, filters, users=users, daily_users=daily_users):
        rows: QuerySet[Any] = DailyDimensionUsage.objects.filter(_segment_condition(filters), organization=org).filter(
            _dimension_rows(org, dimension)
        )
        if feature_id is not None:
            rows = rows.filter(feature_id=feature_id)
        else:
            rows = rows.filter(feature__isnull=not per_feature)
        return _Source(rows, F("value"), False)
    if dimension == "event_type" or dimension.startswith(EVENT_PREFIX):
        key = (
            F("event_type")
            if dimension == "event_type"
            else KeyTextTransform(dimension[len(EVENT_PREFIX) :], "metadata")
        )
        return _Source(filters_apply(UsageEvent.objects.filter(organization=org), filters), _text(key), True)
    # Daily users per age band, gender or account add up from the group rollups; anything
    # else distinct needs the per-user rows.
    segment_users = daily_users and dimension in PERSON_DIMENSIONS and not per_feature
    group_model = _group_model(dimension, filters)
    person_rows_needed = (
        (users and not segment_users)
        or dimension.startswith(USER_PREFIX)
        or (group_model is None and (dimension in PERSON_DIMENSIONS or has_person_filter(filters)))
    )
    if person_rows_needed:
        one_feature = dimension == "feature" or per_feature or feature_id is not None
        model: Any = DailyUserFeatureUsage if one_feature else DailyUserUsage
        rows = filters_apply(model.objects.filter(organization=org), filters)
        keys: dict[str, Any] = {
            "feature": F("feature__key"),
            "age": _AGE_BAND,
            "gender": F("end_user__gender"),
            "account": F("end_user__account__external_id"),
        }
        if dimension.startswith(USER_PREFIX):
            key = KeyTextTransform(dimension[len(USER_PREFIX) :], "end_user__properties")
        else:
            key = keys[dimension]
        return _Source(rows, _text(key), False)
    if group_model is not None:
        rows = rolled_up_rows(org, filters, group_model)
        if feature_id is not None:
            rows = rows.filter(feature_id=feature_id)
        else:
            rows = rows.filter(feature__isnull=dimension != "feature" and not per_feature)
        keys = {
            "feature": F("feature__key"),
            "age": F("age_band"),
            "gender": F("gender"),
            "account": F("account__external_id"),
        }
        return _Source(rows, _text(keys[dimension]), False)
    rows = DailyFeatureUsage.objects.filter(organization=org)
    if feature_id is not None:
        rows = rows.filter(feature_id=feature_id)
    return _Source(rows, _text(F("feature__key")), False)


def _segment_condition(filters: Mapping[str, Any]) -> Q:
    """The age-band and gender conditions on rows that carry them (segment, dimension rows)."""
    condition = Q()
    if filters.get("age"):
        condition &= Q(age_band=filters["age"])
    if filters.get("gender"):
        condition &= Q(gender=filters["gender"])
    return condition


def _in_dimension_rollup(dimension: str, filters: Mapping[str, Any], *, users: bool, daily_users: bool) -> bool:
    """Whether DailyDimensionUsage answers: event type, an event or user property, under
    the filters it carries (feature, age, gender; not a user-property filter), for events
    and session time, and distinct users only per day over all features (an event
    dimension) or per day (a user property)."""
    event_dimension = dimension == "event_type" or dimension.startswith(EVENT_PREFIX)
    rolled_dimension = event_dimension or dimension.startswith(USER_PREFIX)
    # It carries age band and gender, not accounts or user properties.
    person_ok = not has_person_filter(filters) or rolled_up_model(filters) is DailySegmentUsage
    # Its per-feature rows of an event dimension carry no users (see the model).
    users_ok = not users or (daily_users and not (event_dimension and filters.get("feature")))
    return rolled_dimension and person_ok and users_ok


def _dimension_rows(org: Organization, dimension: str) -> Q:
    """The dimension's rows, and for a property the day's marker rows ("(none)": every
    event, or every user's) on the days without a row of it (no event or profile had it)."""
    if dimension == "event_type":
        return Q(dimension=dimension)
    mark = EVENTS_MARK if dimension.startswith(EVENT_PREFIX) else USERS_MARK
    carried = DailyDimensionUsage.objects.filter(organization=org, dimension=dimension, date=OuterRef("date"))
    # An IN the (organization, dimension, feature, date) index serves; the markers' probe
    # runs for marker rows only.
    return Q(dimension__in=[dimension, mark]) & ~Q(Q(dimension=mark) & Exists(carried))


def _rolled_source(
    org: Organization, dimension: str, filters: Mapping[str, Any], start: date, end: date, metric: str, **how: Any
) -> tuple[_Source, list[str]]:
    """The source of `dimension` and its top values: the dimension rollup's, unless it has
    no row of the dimension over the range (a property past the rollup's per-day key cap,
    or one no event carries: all "(none)"), then the per-user or raw rows, which answer
    exactly at their cost."""
    source = _source(org, dimension, filters, **how)
    top = _top_keys(source, start, end, metric)
    if top or source.rows.model is not DailyDimensionUsage:
        return source, top
    source = _source(org, dimension, filters, rolled_up=False, **how)
    return source, _top_keys(source, start, end, metric)


def _value(metric: str, row: Mapping[str, Any]) -> float:
    if metric == "events":
        return row["events"] or 0
    if metric == "active_users":
        return row["users"] or 0
    return round(row["duration"] / row["timed"], 2) if row["timed"] else 0.0


def _top_keys(source: _Source, start: date, end: date, metric: str) -> list[str]:
    """The BREAKDOWN_LIMIT values with most events (most users for active_users)."""
    order = "users" if metric == "active_users" else "events"
    figures = source.figures()
    totals = (
        source.within(start, end)
        .annotate(bkey=source.key)
        .exclude(bkey=FOLDED)
        .values("bkey")
        .annotate(**{order: figures[order]})
        .order_by(f"-{order}", "bkey")
    )
    return [row["bkey"] for row in totals[:BREAKDOWN_LIMIT]]


def _grouped(source: _Source, rows: QuerySet[Any], group: list[str], metric: str) -> list[dict[str, Any]]:
    figures = source.figures()
    wanted = (
        {"users": figures["users"]} if metric == "active_users" else {k: v for k, v in figures.items() if k != "users"}
    )
    return list(rows.values(*group).annotate(**wanted))


# At most this many values of a dimension are pulled to rank and total in one pass; a
# dimension with more (a free-form property read from raw events) totals its rest in SQL.
_TOTALS_FETCHED = 1000


@cached
def breakdown_totals(
    org: Organization,
    *,
    dimension: str,
    start: date,
    end: date,
    metric: str = "events",
    filters: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """`[{key, value}]`: `metric` over start..end per value of `dimension`, the top
    BREAKDOWN_LIMIT values then "other" (the rest together, when there is a rest).

    One grouped pass ranks the values and gives their figures; events and session time add
    up, so "other" is the sum of the rest. Distinct users do not (a user may have several
    event types): their "other" is one more query, and only when there is a rest."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    if metric == "active_users" and (dimension in PERSON_DIMENSIONS or dimension.startswith(USER_PREFIX)):
        return _people_totals(org, dimension, start, end, filters)
    if metric == "active_users" and dimension == "feature":
        return _feature_user_totals(org, start, end, filters)
    users = metric == "active_users"
    source = _source(org, dimension, filters, users=users, per_feature=False)
    ranked = _ranked(source, start, end, metric)
    if source.rows.model is DailyDimensionUsage and all(row["bkey"] == FOLDED for row in ranked):
        # No row of the dimension over the range (see `_rolled_source`): the exact rows.
        source = _source(org, dimension, filters, users=users, per_feature=False, rolled_up=False)
        ranked = _ranked(source, start, end, metric)
    shown = [row for row in ranked if row["bkey"] != FOLDED][:BREAKDOWN_LIMIT]
    result = [{"key": row["bkey"], "value": _value(metric, row)} for row in shown]
    top = {row["bkey"] for row in shown}
    rest_rows = [row for row in ranked if row["bkey"] not in top]
    if not rest_rows:
        return result
    if users or len(ranked) > _TOTALS_FETCHED:
        rows = source.within(start, end).annotate(bkey=source.key)
        rest = rows.exclude(bkey__in=top).aggregate(**_wanted(source, metric))
    else:
        rest = {name: sum(row[name] or 0 for row in rest_rows) for name in _wanted(source, metric)}
    if any(rest.values()):
        result.append({"key": OTHER, "value": _value(metric, rest)})
    return result


def _feature_user_totals(org: Organization, start: date, end: date, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Distinct active users per feature from the per-feature active-day bitmasks (one row
    per user, feature and block, not one per active day), then "other": the distinct users
    of the rest (a user may use several), one query more only when there is a rest."""
    counts = active.feature_users(org, start, end, filters)
    keys = dict(Feature.objects.filter(organization=org, pk__in=list(counts)).values_list("pk", "key"))
    ranked = sorted(counts, key=lambda feature_id: (-counts[feature_id], keys[feature_id]))
    result = [{"key": keys[feature_id], "value": counts[feature_id]} for feature_id in ranked[:BREAKDOWN_LIMIT]]
    rest = ranked[BREAKDOWN_LIMIT:]
    if rest:
        rows = filters_apply(UserFeatureActiveDays.objects.filter(organization=org, feature_id__in=rest), filters)
        users = active.active_within(rows, start, end).aggregate(n=Count("end_user_id", distinct=True))["n"]
        result.append({"key": OTHER, "value": users})
    return result


def _ranked(source: _Source, start: date, end: date, metric: str) -> list[dict[str, Any]]:
    """Every value's figures over start..end (up to `_TOTALS_FETCHED` + 1 of them), most
    events (most users for active_users) first."""
    order = "users" if metric == "active_users" else "events"
    rows = source.within(start, end).annotate(bkey=source.key).values("bkey").annotate(**_wanted(source, metric))
    return list(rows.order_by(f"-{order}", "bkey")[: _TOTALS_FETCHED + 1])


def _people_totals(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """Distinct active users per value of a person dimension in one query: the end users
    grouped by the value, each kept by one index probe on the per-user rollups (as the
    summary counts them; the active-day bitmasks, per feature under a feature filter), so the cost
    follows the end users, not the user-days. Each user has one value, so "other" is the
    sum of the rest."""
    feature_id = feature_pk(filters.get("feature"))
    bitmasks: QuerySet[Any] = (
        UserActiveDays.objects.filter(organization=org, end_user=OuterRef("pk"))
        if feature_id is None
        else UserFeatureActiveDays.objects.filter(organization=org, end_user=OuterRef("pk"), feature_id=feature_id)
    )
    days = active.active_within(bitmasks, start, end)
    if dimension.startswith(USER_PREFIX):
        key = _text(KeyTextTransform(dimension[len(USER_PREFIX) :], "properties"))
    elif dimension == "age":
        key = Case(
            When(age__lt=18, then=Value("<18")),
            When(age__lte=40, then=Value("18-40")),
            When(age__gt=40, then=Value(">40")),
            default=Value(NONE),
            output_field=CharField(),
        )
    elif dimension == "account":
        key = _text(F("account__external_id"))
    else:
        key = _text(F("gender"))
    counts = list(
        EndUser.objects.filter(person_filter(**person_filters(filters), prefix=""), organization=org)
        .filter(Exists(days))
        .annotate(bkey=key)
        .values("bkey")
        .annotate(users=Count("pk"))
        .order_by("-users", "bkey")
    )
    result = [{"key": row["bkey"], "value": row["users"]} for row in counts[:BREAKDOWN_LIMIT]]
    rest = sum(row["users"] for row in counts[BREAKDOWN_LIMIT:])
    return result + ([{"key": OTHER, "value": rest}] if rest else [])


def _person_dimension(dimension: str) -> bool:
    return dimension in ("age", "gender") or dimension.startswith(USER_PREFIX)


def _people_weekly(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any], buckets: list[date]
) -> list[dict[str, Any]]:
    """Weekly distinct users per value of a person dimension from the active-day bitmasks:
    the top values as `_people_totals` ranks them, then every week of each value and of
    "other" (each user has one value, so "other" is the users of the rest) in one statement."""
    top = [row["key"] for row in _people_totals(org, dimension, start, end, filters) if row["key"] != OTHER]
    keys: dict[str, Any] = {"age": _AGE_BAND, "gender": F("end_user__gender")}
    key = (
        KeyTextTransform(dimension[len(USER_PREFIX) :], "end_user__properties")
        if dimension.startswith(USER_PREFIX)
        else keys[dimension]
    )
    rows = active.active_rows(org, filters).alias(bkey_raw=_text(key))
    rows = rows.annotate(
        bkey=Case(When(bkey_raw__in=top, then=F("bkey_raw")), default=Value(OTHER), output_field=CharField())
    )
    values = active.weekly_users_by(rows, start, end, "bkey")
    shown = top + ([OTHER] if values.get(OTHER) else [])
    return [
        {"key": k, "points": [{"date": max(b, start), "value": values.get(k, {}).get(b, 0)} for b in buckets]}
        for k in shown
    ]


def _wanted(source: _Source, metric: str) -> dict[str, Any]:
    figures = source.figures()
    if metric == "active_users":
        return {"users": figures["users"]}
    return {k: v for k, v in figures.items() if k != "users"}


@cached
def breakdown_series(
    org: Organization,
    *,
    dimension: str,
    start: date,
    end: date,
    interval: str = "day",
    metric: str = "events",
    filters: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """`[{key, points: [{date, value}]}]` for the top values of `dimension` and "other",
    one point per day or week (Monday-based, a first week cut by `start` labelled `start`, as
    `timeseries`), zero-filled."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    buckets = days_between(start, end) if interval == "day" else days_between(week_monday(start), week_monday(end))[::7]
    users = metric == "active_users"
    if users and interval == "week" and _person_dimension(dimension):
        return _people_weekly(org, dimension, start, end, filters, buckets)
    source, top = _rolled_source(
        org, dimension, filters, start, end, metric, users=users, per_feature=False, daily_users=interval == "day"
    )
    rows = source.within(start, end).annotate(bkey=source.key, bucket=source.bucket(interval))
    in_top = Q(bkey__in=top)
    values: dict[str, dict[date, float]] = defaultdict(dict)
    for r in _grouped(source, rows.filter(in_top), ["bkey", "bucket"], metric):
        values[r["bkey"]][_as_date(r["bucket"])] = _value(metric, r)
    for r in _grouped(source, rows.exclude(in_top), ["bucket"], metric):
        values[OTHER][_as_date(r["bucket"])] = _value(metric, r)
    keys = top + ([OTHER] if values.get(OTHER) else [])
    # As `timeseries` labels it, a first week cut by `start` is labelled `start`.
    return [
        {"key": key, "points": [{"date": max(b, start), "value": values[key].get(b, 0)} for b in buckets]}
        for key in keys
    ]


@cached
def breakdown_by_feature(
    org: Organization, *, dimension: str, start: date, end: date, filters: dict[str, Any] | None = None
) -> dict[int, list[dict[str, Any]]]:
    """{feature_id: [{key, value}]}: each feature's events over start..end per value of
    `dimension` (the top values over all features, then "other")."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    # The top values over all features from the all-features rows (the per-feature rows add
    # up to them, and are dozens of times more), then every feature's values in one pass,
    # the rest folded into "other" here (events add up).
    totals, top = _rolled_source(org, dimension, filters, start, end, "events", users=False, per_feature=False)
    rolled_up = totals.rows.model is DailyDimensionUsage or not _in_dimension_rollup(
        dimension, filters, users=False, daily_users=False
    )
    source = _source(org, dimension, filters, users=False, per_feature=True, rolled_up=rolled_up)
    rows = source.within(start, end).annotate(bkey=source.key)
    shown = set(top)
    split: dict[int, dict[str, float]] = defaultdict(dict)
    rest: dict[int, float] = defaultdict(int)
    for r in _grouped(source, rows, ["feature_id", "bkey"], "events"):
        if r["bkey"] in shown:
            split[r["feature_id"]][r["bkey"]] = r["events"] or 0
        else:
            rest[r["feature_id"]] += r["events"] or 0
    for feature_id, events in rest.items():
        if events:
            split[feature_id][OTHER] = events
    return {
        feature_id: [{"key": key, "value": by_key[key]} for key in [*top, OTHER] if key in by_key]
        for feature_id, by_key in split.items()
    }


def _as_date(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value
