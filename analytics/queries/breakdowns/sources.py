"""Where a breakdown's figures come from: the rows that carry a dimension under the filters
(`source_for`), how they are bucketed and totalled, and the values ranked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models.expressions import OrderBy
from django.db.models.fields import CharField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, Collate, NullIf, TruncDate, TruncWeek

from telemetry.models import UsageEvent
from telemetry.services.partitions import raw_events_horizon
from tenants.models import Organization

from ...models import (
    DailyAccountUsage,
    DailyDimensionUsage,
    DailyFeatureUsage,
    DailySegmentUsage,
    DailyUserFeatureUsage,
    DailyUserUsage,
)
from ...rollup_dimensions_sql import EVENTS_MARK, FOLDED, USERS_MARK
from ..cache import cached_rows
from ..common import bounds, feature_pk
from ..filters import (
    ROLLED_UP_MODELS,
    dimension_segment,
    filters_apply,
    has_person_filter,
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


def raw_events_from(dimension: str, start: date) -> date | None:
    """The first day whose raw events are kept (RAW_EVENT_RETENTION_MONTHS) when `start` is
    before it and `dimension` is one a breakdown may read from the raw events (the event
    type or an event property, for distinct users over a range or under filters the
    dimension rollup does not carry); else None. Those reads count from that day: the
    answers say so (`raw_events_from`) rather than show the expired days as nobody."""
    if dimension != "event_type" and not dimension.startswith(EVENT_PREFIX):
        return None
    horizon = raw_events_horizon()
    if horizon is None or start >= horizon.date():
        return None
    return horizon.date()


def person_dimension(dimension: str) -> bool:
    """Whether `dimension` is who the end user is: one of PERSON_DIMENSIONS or a property of
    theirs (`user.<name>`). Events sent without an end user have no value of it."""
    return dimension in PERSON_DIMENSIONS or dimension.startswith(USER_PREFIX)


@dataclass(frozen=True)
class Source:
    rows: QuerySet[Any]
    key: Any
    raw: bool  # raw events (timestamp, one row per event) or daily rows (date, counters)

    def within(self, start: date, end: date) -> QuerySet[Any]:
        if self.raw:
            horizon = raw_events_horizon()
            lo, hi = bounds(start if horizon is None else max(start, horizon.date()), end)
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


def text_of(expr: Any) -> Any:
    """A dimension value as text, `(none)` where it is missing."""
    return Coalesce(NullIf(Cast(expr, CharField()), Value("")), Value(NONE), output_field=CharField())


def age_band(age: str) -> Case:
    """The age band of the end user whose age is the field `age`, `(none)` without one."""
    return Case(
        When(**{f"{age}__lt": 18}, then=Value("<18")),
        When(**{f"{age}__lte": 40}, then=Value("18-40")),
        When(**{f"{age}__gt": 40}, then=Value(">40")),
        default=Value(NONE),
        output_field=CharField(),
    )


AGE_BAND = age_band("end_user__age")


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


def source_for(
    org: Organization,
    dimension: str,
    filters: Mapping[str, Any],
    *,
    users: bool,
    per_feature: bool,
    daily_users: bool = False,
    rolled_up: bool = True,
) -> Source:
    """The rows that answer `dimension` under `filters` (see the module docstring); `users`:
    distinct users are asked (then per-user or raw rows, or segment or dimension rows for
    `daily_users`); `per_feature`: rows of one feature each (feature-usage); `rolled_up`:
    False skips the dimension rollup (a property it has no rows of)."""
    feature_id = feature_pk(filters.get("feature"))
    key: Any
    if rolled_up and in_dimension_rollup(dimension, filters, users=users, daily_users=daily_users):
        rows: QuerySet[Any] = DailyDimensionUsage.objects.filter(dimension_segment(filters), organization=org).filter(
            _dimension_rows(org, dimension)
        )
        if feature_id is not None:
            rows = rows.filter(feature_id=feature_id)
        else:
            rows = rows.filter(feature__isnull=not per_feature)
        return Source(rows, F("value"), False)
    if dimension == "event_type" or dimension.startswith(EVENT_PREFIX):
        key = (
            F("event_type")
            if dimension == "event_type"
            else KeyTextTransform(dimension[len(EVENT_PREFIX) :], "metadata")
        )
        return Source(filters_apply(UsageEvent.objects.filter(organization=org), filters), text_of(key), True)
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
            "age": AGE_BAND,
            "gender": F("end_user__gender"),
            "account": F("end_user__account__external_id"),
        }
        if dimension.startswith(USER_PREFIX):
            key = KeyTextTransform(dimension[len(USER_PREFIX) :], "end_user__properties")
        else:
            key = keys[dimension]
        return Source(rows, text_of(key), False)
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
        return Source(rows, text_of(keys[dimension]), False)
    rows = DailyFeatureUsage.objects.filter(organization=org)
    if feature_id is not None:
        rows = rows.filter(feature_id=feature_id)
    return Source(rows, text_of(F("feature__key")), False)


def in_dimension_rollup(dimension: str, filters: Mapping[str, Any], *, users: bool, daily_users: bool) -> bool:
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
    # A day has rows of a dimension exactly when it has its all-features rows (feature NULL:
    # the rollup writes both from the same events and keys), a handful a day where the
    # per-feature rows are fifty times as many: the probe, which PostgreSQL hashes whole,
    # reads only those (a user property's per-feature split at 10 M events: 43 → 27 ms).
    carried = DailyDimensionUsage.objects.filter(
        organization=org, dimension=dimension, feature__isnull=True, date=OuterRef("date")
    )
    # An IN the (organization, dimension, feature, date) index serves; the markers' probe
    # runs for marker rows only.
    return Q(dimension__in=[dimension, mark]) & ~Q(Q(dimension=mark) & Exists(carried))


def rolled_ranking(
    org: Organization, dimension: str, filters: Mapping[str, Any], start: date, end: date, metric: str, **how: Any
) -> tuple[Source, list[dict[str, Any]]]:
    """The source of `dimension` and its values ranked (`ranked`): the dimension rollup's,
    unless it has no row of the dimension over the range but folded ones (a property past
    the rollup's per-day key cap, or one no event carries: all "(none)"), then the per-user
    or raw rows, which answer exactly at their cost."""
    source = source_for(org, dimension, filters, **how)
    rows = ranked(org, source, start, end, metric)
    if source.rows.model is DailyDimensionUsage and all(row["bkey"] == FOLDED for row in rows):
        source = source_for(org, dimension, filters, rolled_up=False, **how)
        rows = ranked(org, source, start, end, metric)
    if metric == "active_users":
        # A value only anonymous events carry has no user to show (totals and series alike).
        rows = [row for row in rows if row["users"]]
    return source, rows


def shown(key: str) -> bool:
    """Whether a value may be one of the top values: not a folded one, nor a value that is
    literally "other" (an end-user property, an event type, a feature key), which goes into
    the "other" of the rest rather than beside it under the same name."""
    return key not in (FOLDED, OTHER)


def top_of(rows: list[dict[str, Any]]) -> list[str]:
    """The BREAKDOWN_LIMIT first values of `ranked` rows that may be shown (`shown`)."""
    return [row["bkey"] for row in rows if shown(row["bkey"])][:BREAKDOWN_LIMIT]


def rolled_source(
    org: Organization, dimension: str, filters: Mapping[str, Any], start: date, end: date, metric: str, **how: Any
) -> tuple[Source, list[str]]:
    """The source of `dimension` and its top values (see `rolled_ranking`)."""
    source, rows = rolled_ranking(org, dimension, filters, start, end, metric, **how)
    return source, top_of(rows)


def value_of(metric: str, row: Mapping[str, Any]) -> float | None:
    if metric == "events":
        return row["events"] or 0
    if metric == "active_users":
        return row["users"] or 0
    # No event with a duration: nothing to average (null, not 0 s).
    return round(row["duration"] / row["timed"], 2) if row["timed"] else None


def wanted(source: Source, metric: str) -> dict[str, Any]:
    """The aggregates `metric` needs: distinct users, or events and session time."""
    figures = source.figures()
    if metric == "active_users":
        return {"users": figures["users"]}
    return {k: v for k, v in figures.items() if k != "users"}


def grouped(source: Source, rows: QuerySet[Any], group: list[str], metric: str) -> list[dict[str, Any]]:
    return list(rows.values(*group).annotate(**wanted(source, metric)))


# At most this many values of a dimension are pulled to rank and total in one pass; a
# dimension with more (a free-form property read from raw events) totals its rest in SQL.
# More than the values shown, or the ranking itself would be cut.
TOTALS_FETCHED = 1000
assert TOTALS_FETCHED > BREAKDOWN_LIMIT


def ranked(org: Organization, source: Source, start: date, end: date, metric: str) -> list[dict[str, Any]]:
    """Every value's figures over start..end (up to `TOTALS_FETCHED` + 1 of them), most
    events (most users for active_users) first."""
    order = "users" if metric == "active_users" else "events"
    rows = source.within(start, end).annotate(bkey=source.key).values("bkey").annotate(**wanted(source, metric))
    # Cached under its SQL: a dashboard ranks the same values for its totals, its series and
    # each feature's split, from sources built with different arguments.
    return cached_rows(org, rows.order_by(f"-{order}", in_codepoint_order("bkey"))[: TOTALS_FETCHED + 1])


def series_of(
    keys: list[str],
    values: Mapping[str, Mapping[date, float | None]],
    buckets: list[date],
    start: date,
    missing: float | None = 0,
) -> list[dict[str, Any]]:
    """`[{key, points: [{date, value}]}]` for `keys`, a point per bucket (`missing` where
    `values` has none: 0 for counts, None for an average); as `timeseries` labels it, a first
    week cut by `start` is labelled `start`."""
    return [
        {
            "key": key,
            "points": [{"date": max(b, start), "value": values.get(key, {}).get(b, missing)} for b in buckets],
        }
        for key in keys
    ]


class _InCodepointOrder(Collate):
    """Text compared in code-point order, as Python compares strings: PostgreSQL's "C"
    collation (byte order, which is code-point order in UTF-8); SQLite's BINARY."""

    def __init__(self, expression: Any) -> None:
        super().__init__(expression, "C")

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return super().as_sql(compiler, connection, collation=connection.ops.quote_name("BINARY"), **extra_context)

    def get_group_by_cols(self) -> list[Any]:
        # An ORDER BY of a grouped key: grouped by the key alone, not again under the collation.
        return self.get_source_expressions()[0].get_group_by_cols()


def in_codepoint_order(name: str) -> OrderBy:
    """Ascending `name` for an ORDER BY that breaks a ranking's ties as `ranked_keys` does."""
    return _InCodepointOrder(F(name)).asc()


def ranked_keys(users: dict[str, int]) -> list[str]:
    """The values, most users first, ties in code-point order: ranked in Python, so every
    breakdown ranks alike whatever the database's collation (en_US sorts "b" before "C")."""
    return sorted(users, key=lambda value: (-users[value], value))
