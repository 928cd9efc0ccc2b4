"""The filter set, applied in one place to every analytics read: raw events and the per-user
rollups alike. Both carry `end_user` (the person filters go through it, so a profile update
applies to history at once) and, where a row belongs to one feature, `feature`.

A filter added here (an account, a user property) applies to every query built on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet

from tenants.models import Organization

from ..models import DailySegmentUsage
from .common import feature_pk

_M = TypeVar("_M", bound=Model)

AGE_BANDS = {"<18": {"lt": 18}, "18-40": {"gte": 18, "lte": 40}, ">40": {"gt": 40}}


def person_filter(*, age: str | None = None, gender: str | None = None, prefix: str = "end_user__") -> Q:
    """The condition on a row's end user for the person filters given (empty: everyone,
    anonymous events included). `prefix=""` applies it to EndUser rows themselves."""
    condition = Q()
    if age:
        condition &= Q(**{f"{prefix}age__{op}": bound for op, bound in AGE_BANDS[age].items()})
    if gender:
        condition &= Q(**{f"{prefix}gender": gender})
    return condition


def segment_filter(filters: Mapping[str, Any]) -> Q:
    """The person filters on DailySegmentUsage rows (age band and gender as rolled up)."""
    condition = Q()
    if filters.get("age"):
        condition &= Q(age_band=filters["age"])
    if filters.get("gender"):
        condition &= Q(gender=filters["gender"])
    return condition


def segment_rows(org: Organization, filters: Mapping[str, Any]) -> QuerySet[DailySegmentUsage]:
    """The segment rows answering `filters`: all features' rows, or the one feature's."""
    feature_id = feature_pk(filters.get("feature"))
    rows = DailySegmentUsage.objects.filter(segment_filter(filters), organization=org)
    return rows.filter(feature__isnull=True) if feature_id is None else rows.filter(feature_id=feature_id)


def has_person_filter(filters: Mapping[str, Any]) -> bool:
    """Whether `filters` narrows by who the end user is (then rows without a person, the
    anonymous events, drop out and the per-user rollups answer)."""
    return bool(filters.get("age") or filters.get("gender"))


def filters_apply(qs: QuerySet[_M], filters: Mapping[str, Any]) -> QuerySet[_M]:
    """`qs` narrowed by `filters`: `feature` (a Feature or its id; only for rows of one
    feature), `age` (band) and `gender`. Unknown or empty keys are ignored here: the
    request parsers refuse what no query can apply."""
    feature_id = feature_pk(filters.get("feature"))
    if feature_id is not None:
        qs = qs.filter(feature_id=feature_id)
    condition = person_filter(age=filters.get("age"), gender=filters.get("gender"))
    return qs.filter(condition) if condition else qs
