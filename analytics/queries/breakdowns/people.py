"""Distinct active users per value of a person dimension (age band, gender, account, an
end-user property): over a range and per week, from the per-segment recency rows or the
active-day bitmasks."""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

from django.db.models import Count, Exists, F, OuterRef, QuerySet
from django.db.models.fields.json import KeyTextTransform

from telemetry.models import EndUser
from tenants.models import Organization

from ...models import UserActiveDays, UserFeatureActiveDays
from ...recency_segments import reaches, users_within, weekly_within
from .. import active
from ..common import feature_pk
from ..filters import has_person_filter, person_filter, person_filters
from .sources import (
    BREAKDOWN_LIMIT,
    NONE,
    OTHER,
    USER_PREFIX,
    age_band,
    ranked_keys,
    series_of,
    shown,
    text_of,
)


def _from_recency(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any]
) -> tuple[dict[str, int], dict[str, dict[date, int]]] | None:
    """Distinct users over the range and per week for each age band or gender (keys as the
    breakdowns show them) from the per-segment recency rows, when the filters are only age
    and gender and the rows reach the range; else None."""
    if dimension not in ("age", "gender") or not reaches(start, end):
        return None
    rows = active.segment_recency_rows(org, filters, start, end, by=dimension)
    if rows is None:
        return None
    users, weekly = users_within(rows, start, end), weekly_within(rows, start, end)
    return {value or NONE: n for value, n in users.items()}, {value or NONE: dict(w) for value, w in weekly.items()}


def people_totals(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any]
) -> list[dict[str, Any]]:
    """Distinct active users per value of a person dimension: for age and gender the
    per-segment recency rows (`recency_segments`) where they answer; else in one query, the
    end users grouped by the value, each kept by one index probe on the per-user rollups (as
    the summary counts them; the active-day bitmasks, per feature under a feature filter), so
    the cost follows the end users, not the user-days. Each user has one value, so "other"
    is the sum of the rest."""
    recency = _from_recency(org, dimension, start, end, filters)
    users = recency[0] if recency is not None else _profile_users(org, dimension, start, end, filters)
    top = _top_values(users)
    rest = sum(users.values()) - sum(users[value] for value in top)
    return [{"key": value, "value": users[value]} for value in top] + ([{"key": OTHER, "value": rest}] if rest else [])


def _top_values(users: dict[str, int]) -> list[str]:
    """The values a breakdown shows as themselves: the first BREAKDOWN_LIMIT of them ranked
    by `ranked_keys` (code-point ties, whatever the database's collation), so the totals and
    the weekly series of one breakdown show the same ones."""
    return [value for value in ranked_keys(users) if shown(value)][:BREAKDOWN_LIMIT]


def _profile_users(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any]
) -> dict[str, int]:
    """{value: users}: the end users active in the range, per value."""
    feature_id = feature_pk(filters.get("feature"))
    bitmasks: QuerySet[Any] = (
        UserActiveDays.objects.filter(organization=org, end_user=OuterRef("pk"))
        if feature_id is None
        else UserFeatureActiveDays.objects.filter(organization=org, end_user=OuterRef("pk"), feature_id=feature_id)
    )
    days = active.active_within(bitmasks, start, end)
    return {
        row["bkey"]: row["users"]
        for row in EndUser.objects.filter(person_filter(**person_filters(filters), prefix=""), organization=org)
        .filter(Exists(days))
        .annotate(bkey=_profile_key(dimension))
        .values("bkey")
        .annotate(users=Count("pk"))
        .order_by()
    }


def _profile_key(dimension: str, of: str = "") -> Any:
    """An end user's value of a person dimension, as the breakdowns show it; `of`: the path
    to the end user ("end_user__" from rows that belong to one)."""
    if dimension.startswith(USER_PREFIX):
        return text_of(KeyTextTransform(dimension[len(USER_PREFIX) :], f"{of}properties"))
    if dimension == "age":
        return age_band(f"{of}age")
    if dimension == "account":
        return text_of(F(f"{of}account__external_id"))
    return text_of(F(f"{of}gender"))


def is_person_dimension(dimension: str) -> bool:
    return dimension in ("age", "gender") or dimension.startswith(USER_PREFIX)


def people_weekly(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any], buckets: list[date]
) -> list[dict[str, Any]]:
    """Weekly distinct users per value of a person dimension: the top values ranked as
    `people_totals` ranks them, then every week of each value and of "other" (each user has
    one value, so "other" is the users of the rest). For age and gender from the
    per-segment recency rows where they answer; else from the active-day bitmasks, the
    ranking and the weeks in one statement (`active.users_and_weeks_by`)."""
    recency = _from_recency(org, dimension, start, end, filters)
    if recency is not None:
        users, weekly = recency
    else:
        rows = active.active_rows(org, filters)
        if has_person_filter(filters):
            # Joined with the end users for the filters (with the organisation's only): the
            # key is read there.
            rows = rows.filter(end_user__organization=org)
            key_of_row = _profile_key(dimension, of="end_user__")
            users, weekly = active.users_and_weeks_by(rows, start, end, key_of_row=key_of_row)
        else:
            keys = EndUser.objects.filter(organization=org).annotate(bkey=_profile_key(dimension))
            users, weekly = active.users_and_weeks_by(rows, start, end, keys=keys.order_by().values("id", "bkey"))
    values = {value: weekly.get(value, {}) for value in _top_values(users)}
    rest: Counter[date] = Counter()
    for value, weeks in weekly.items():
        if value not in values:
            rest.update(weeks)
    if rest:
        values[OTHER] = dict(rest)
    return series_of(list(values), values, buckets, start)
