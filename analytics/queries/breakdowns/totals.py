"""`breakdown_totals`: a figure over a range per value of a dimension, top values and "other"."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Count, F, QuerySet

from core.db_routing import read_alias
from telemetry.models import Feature
from tenants.models import Organization

from ...recency_segments import event_type_rows as event_type_recency_rows
from ...recency_segments import reaches, users_within, weekly_within
from .. import active
from ..cache import cached
from .people import people_totals
from .sources import (
    BREAKDOWN_LIMIT,
    NONE,
    OTHER,
    TOTALS_FETCHED,
    in_codepoint_order,
    person_dimension,
    ranked_keys,
    rolled_ranking,
    shown,
    text_of,
    top_of,
    value_of,
    wanted,
)


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
    if metric == "active_users" and person_dimension(dimension):
        return people_totals(org, dimension, start, end, filters)
    if metric == "active_users" and dimension == "feature":
        return _feature_user_totals(org, start, end, filters)
    if metric == "active_users" and dimension == "event_type":
        recency = event_type_recency_users(org, start, end, filters)
        if recency is not None:
            type_users = recency[0]
            return [{"key": key, "value": type_users[key]} for key in ranked_keys(type_users)]
        bitmasks = active.event_type_bitmasks(org, filters)
        if bitmasks is not None:
            return event_type_user_totals(bitmasks, start, end)
    users = metric == "active_users"
    source, ranked_rows = rolled_ranking(org, dimension, filters, start, end, metric, users=users, per_feature=False)
    top = top_of(ranked_rows)
    figures = {row["bkey"]: row for row in ranked_rows}
    result = [{"key": key, "value": value_of(metric, figures[key])} for key in top]
    rest_rows = [row for row in ranked_rows if row["bkey"] not in top]
    if not rest_rows:
        return result
    if users or len(ranked_rows) > TOTALS_FETCHED:
        rows = source.within(start, end).annotate(bkey=source.key)
        rest = rows.exclude(bkey__in=top).aggregate(**wanted(source, metric))
    else:
        rest = {name: sum(row[name] or 0 for row in rest_rows) for name in wanted(source, metric)}
    if any(rest.values()):
        result.append({"key": OTHER, "value": value_of(metric, rest)})
    return result


def _feature_user_totals(org: Organization, start: date, end: date, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Distinct active users per feature from the per-feature active-day bitmasks (one row
    per user, feature and block, not one per active day), then "other": the distinct users
    of the rest (a user may use several), one query more only when there is a rest."""
    counts = active.feature_users(org, start, end, filters)
    keys = dict(Feature.objects.filter(organization=org, pk__in=list(counts)).values_list("pk", "key"))
    # Ties in code-point order of the keys, as the other breakdowns break them.
    order = sorted(counts, key=lambda feature_id: (-counts[feature_id], keys[feature_id]))
    top = [feature_id for feature_id in order if shown(keys[feature_id])][:BREAKDOWN_LIMIT]
    result = [{"key": keys[feature_id], "value": counts[feature_id]} for feature_id in top]
    rest = [feature_id for feature_id in order if feature_id not in top]
    if rest:
        result.append({"key": OTHER, "value": active.any_feature_users(org, start, end, filters, rest)})
    return result


def event_type_keyed(bitmasks: QuerySet[Any]) -> QuerySet[Any]:
    """The per-event-type bitmask rows, each with its breakdown key `bkey` (the type as the
    other paths show it: "(none)" for an empty one, so "" and a type sent as "(none)" are one
    value, as there)."""
    return bitmasks.annotate(bkey=text_of(F("event_type")))


def event_type_user_totals(bitmasks: QuerySet[Any], start: date, end: date) -> list[dict[str, Any]]:
    """Distinct users per event type from the per-event-type bitmasks (`bitmasks`, already
    narrowed by the filters): the top BREAKDOWN_LIMIT types, most users first and ties in
    code-point order (as the other paths rank), ranked and cut in SQL however many types were
    sent; then "other", the distinct users of the rest (one query more, only when there is
    a rest)."""
    rows = active.active_within(event_type_keyed(bitmasks), start, end)
    ranked = list(
        rows.values("bkey")
        .annotate(users=Count("end_user_id", distinct=True))
        .order_by("-users", in_codepoint_order("bkey"))[: BREAKDOWN_LIMIT + 2]
    )
    # One more than the limit, and one more for a type literally named "other" (`shown`).
    top_rows = [row for row in ranked if shown(row["bkey"])][:BREAKDOWN_LIMIT]
    top = [row["bkey"] for row in top_rows]
    result = [{"key": row["bkey"], "value": row["users"]} for row in top_rows]
    if len(ranked) > len(top_rows):
        rest = rows.exclude(bkey__in=top).aggregate(n=Count("end_user_id", distinct=True))["n"]
        result.append({"key": OTHER, "value": rest})
    return result


def event_type_recency_users(
    org: Organization, start: date, end: date, filters: dict[str, Any]
) -> tuple[dict[str, int], dict[str, dict[date, int]]] | None:
    """Distinct users over the range and per week of each event type (keys as the breakdowns
    show them) from the per-event-type recency rows, when no filter applies, the rows reach
    the range and every type is shown (no "other", which would be the users of several
    types, counted once); else None (the bitmasks answer)."""
    if any(filters.values()) or not reaches(start, end):
        return None
    rows = event_type_recency_rows(read_alias(), org.pk, start, end)
    if rows is None:
        return None
    users, weekly = users_within(rows, start, end), weekly_within(rows, start, end)
    shown_keys = {text: value for value in users if shown(text := value or NONE)}
    # "" and a type sent as "(none)" are one value, whose users a sum would count twice.
    if len(shown_keys) != len(users) or len(users) > BREAKDOWN_LIMIT:
        return None
    return (
        {text: users[value] for text, value in shown_keys.items()},
        {text: dict(weekly.get(value, {})) for text, value in shown_keys.items()},
    )
