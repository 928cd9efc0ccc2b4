"""Distinct active users per value of a person dimension (age band, gender, account, an
end-user property): over a range and per week, from the active-day bitmasks."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import Case, Count, Exists, F, OuterRef, QuerySet, Value, When
from django.db.models.fields import CharField
from django.db.models.fields.json import KeyTextTransform

from telemetry.models import EndUser
from tenants.models import Organization

from ...models import UserActiveDays, UserFeatureActiveDays
from .. import active
from ..common import feature_pk
from ..filters import person_filter, person_filters
from .sources import AGE_BAND, BREAKDOWN_LIMIT, OTHER, USER_PREFIX, age_band, series_of, shown, text_of


def people_totals(
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
        key = text_of(KeyTextTransform(dimension[len(USER_PREFIX) :], "properties"))
    elif dimension == "age":
        key = age_band("age")
    elif dimension == "account":
        key = text_of(F("account__external_id"))
    else:
        key = text_of(F("gender"))
    counts = list(
        EndUser.objects.filter(person_filter(**person_filters(filters), prefix=""), organization=org)
        .filter(Exists(days))
        .annotate(bkey=key)
        .values("bkey")
        .annotate(users=Count("pk"))
        .order_by("-users", "bkey")
    )
    top = [row for row in counts if shown(row["bkey"])][:BREAKDOWN_LIMIT]
    result = [{"key": row["bkey"], "value": row["users"]} for row in top]
    rest = sum(row["users"] for row in counts) - sum(row["users"] for row in top)
    return result + ([{"key": OTHER, "value": rest}] if rest else [])


def is_person_dimension(dimension: str) -> bool:
    return dimension in ("age", "gender") or dimension.startswith(USER_PREFIX)


def people_weekly(
    org: Organization, dimension: str, start: date, end: date, filters: dict[str, Any], buckets: list[date]
) -> list[dict[str, Any]]:
    """Weekly distinct users per value of a person dimension from the active-day bitmasks:
    the top values as `people_totals` ranks them, then every week of each value and of
    "other" (each user has one value, so "other" is the users of the rest) in one statement."""
    top = [row["key"] for row in people_totals(org, dimension, start, end, filters) if row["key"] != OTHER]
    keys: dict[str, Any] = {"age": AGE_BAND, "gender": F("end_user__gender")}
    key = (
        KeyTextTransform(dimension[len(USER_PREFIX) :], "end_user__properties")
        if dimension.startswith(USER_PREFIX)
        else keys[dimension]
    )
    rows = active.active_rows(org, filters).alias(bkey_raw=text_of(key))
    rows = rows.annotate(
        bkey=Case(When(bkey_raw__in=top, then=F("bkey_raw")), default=Value(OTHER), output_field=CharField())
    )
    values = active.weekly_users_by(rows, start, end, "bkey")
    return series_of(top + ([OTHER] if values.get(OTHER) else []), values, buckets, start)
