"""`breakdown_series` (a figure per day or week per value of a dimension) and
`breakdown_by_feature` (each feature's events per value)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from django.db.models import Case, CharField, F, Q, QuerySet, Sum, Value, When

from telemetry.models import Account
from tenants.models import Organization

from ...models import DailyAccountUsage, DailyDimensionUsage, DailySegmentUsage
from .. import active
from ..cache import cached
from ..common import days_between, feature_pk, week_monday
from ..filters import has_person_filter
from .people import is_person_dimension, people_weekly
from .sources import (
    NONE,
    OTHER,
    Source,
    grouped,
    in_dimension_rollup,
    ranked_keys,
    rolled_source,
    series_of,
    source_for,
    value_of,
)
from .totals import event_type_keyed, event_type_recency_users, event_type_user_totals


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
    if users and interval == "week" and is_person_dimension(dimension):
        return people_weekly(org, dimension, start, end, filters, buckets)
    if users and dimension == "event_type" and interval == "week":
        recency = event_type_recency_users(org, start, end, filters)
        if recency is not None:
            return series_of(ranked_keys(recency[0]), recency[1], buckets, start)
    bitmasks = active.event_type_bitmasks(org, filters) if users and dimension == "event_type" else None
    if bitmasks is not None and interval == "week":
        return _event_type_weekly(bitmasks, start, end, buckets)
    source, top = rolled_source(
        org, dimension, filters, start, end, metric, users=users, per_feature=False, daily_users=interval == "day"
    )
    rows = source.within(start, end).annotate(bkey=source.key, bucket=source.bucket(interval))
    in_top = Q(bkey__in=top)
    values: dict[str, dict[date, float | None]] = defaultdict(dict)
    for r in grouped(source, rows.filter(in_top), ["bkey", "bucket"], metric):
        values[r["bkey"]][as_date(r["bucket"])] = value_of(metric, r)
    for r in grouped(source, rows.exclude(in_top), ["bucket"], metric):
        values[OTHER][as_date(r["bucket"])] = value_of(metric, r)
    # "Other" only when the rest has something to show (values without users drop out).
    shown = top + ([OTHER] if any(values[OTHER].values()) else [])
    return series_of(shown, values, buckets, start, missing=None if metric == "avg_session_duration" else 0)


def _event_type_weekly(bitmasks: QuerySet[Any], start: date, end: date, buckets: list[date]) -> list[dict[str, Any]]:
    """Weekly distinct users per event type from the per-event-type bitmasks: the top types as
    `event_type_user_totals` ranks them, every week of each in one statement (a user has one
    row per type and block, and a week lies in one block: rows counted, no DISTINCT, but for
    "(none)", which may stand for two stored types), then, only when there are more types,
    the users of any of the rest, counted once."""
    totals = event_type_user_totals(bitmasks, start, end)
    top = [row["key"] for row in totals if row["key"] != OTHER]
    keyed = event_type_keyed(bitmasks)
    values = active.weekly_users_by(keyed.filter(bkey__in=top), start, end, "bkey", distinct=NONE in top)
    if len(totals) > len(top):
        rest = keyed.exclude(bkey__in=top).annotate(rest=Value(OTHER))
        values[OTHER] = active.weekly_users_by(rest, start, end, "rest", distinct=True).get(OTHER, {})
    return series_of([*top, OTHER] if values.get(OTHER) else top, values, buckets, start)


@cached
def breakdown_by_feature(
    org: Organization, *, dimension: str, start: date, end: date, filters: dict[str, Any] | None = None
) -> dict[int, list[dict[str, Any]]]:
    """{feature_id: [{key, value}]}: each feature's events over start..end per value of
    `dimension` (the top values over all features, then "other")."""
    filters = {k: v for k, v in (filters or {}).items() if v}
    # The top values over all features from the all-features rows (the per-feature rows add
    # up to them, and are dozens of times more), then every feature's values in one pass,
    # the rest summed into "other" (events add up).
    totals, top = rolled_source(org, dimension, filters, start, end, "events", users=False, per_feature=False)
    rolled_up = totals.rows.model is DailyDimensionUsage or not in_dimension_rollup(
        dimension, filters, users=False, daily_users=False
    )
    source = source_for(org, dimension, filters, users=False, per_feature=True, rolled_up=rolled_up)
    if source.rows.model is DailyAccountUsage and not has_person_filter(filters):
        return _by_account_per_feature(org, source, top, start, end, feature_pk(filters.get("feature")))
    # The values past the top fold into one group (NULL) in the database: a feature per
    # account, say, is thousands of groups (11,000 rows fetched and converted for 30 days of
    # 200 accounts), where the chart shows a dozen.
    kept = Case(When(raw_key__in=top, then=F("raw_key")), default=Value(None), output_field=CharField())
    rows = (
        source.within(start, end)
        .alias(raw_key=source.key)
        .annotate(bkey=kept if top else Value(None, output_field=CharField()))
    )
    shown = set(top)
    split: dict[int, dict[str, float]] = defaultdict(dict)
    rest: dict[int, float] = defaultdict(int)
    for r in grouped(source, rows, ["feature_id", "bkey"], "events"):
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


def _by_account_per_feature(
    org: Organization, source: Source, top: list[str], start: date, end: date, feature_id: int | None
) -> dict[int, list[dict[str, Any]]]:
    """`breakdown_by_feature` by account without a person filter: the top accounts' rows
    through the (organization, account, date) index, and each feature's "other" as its events
    of identified users (the segment rollup's, which every user's day adds to as it does to
    the account rows) minus the top accounts'. Grouping every (feature, account) pair read
    every account row of the range: 50 features × 200 accounts × 90 days on the bench."""
    ids = dict(Account.objects.filter(organization=org, external_id__in=top).values_list("pk", "external_id"))
    shown = Q(account_id__in=list(ids))
    if NONE in top:
        shown |= Q(account__isnull=True)
    split: dict[int, dict[str, float]] = defaultdict(dict)
    top_rows = source.within(start, end).filter(shown).values_list("feature_id", "account_id")
    for feature, account_id, events in top_rows.annotate(n=Sum("event_count")).order_by():
        split[feature][ids.get(account_id, NONE)] = events or 0
    identified = DailySegmentUsage.objects.filter(
        organization=org, feature__isnull=False, date__gte=start, date__lte=end
    )
    if feature_id is not None:
        identified = identified.filter(feature_id=feature_id)
    for feature, events in identified.values_list("feature_id").annotate(n=Sum("event_count")).order_by():
        rest = (events or 0) - sum(split[feature].values())
        if rest:
            split[feature][OTHER] = rest
    return {
        feature: [{"key": key, "value": by_key[key]} for key in [*top, OTHER] if key in by_key]
        for feature, by_key in split.items()
        if by_key
    }


def as_date(value: Any) -> date:
    return value.date() if hasattr(value, "date") and callable(value.date) else value
