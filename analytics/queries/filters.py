"""The filter set, applied in one place to every analytics read: raw events and the per-user
rollups alike. Both carry `end_user` (the person filters go through it, so a profile update
or a move to another account applies to history at once) and, where a row belongs to one
feature, `feature`.

Person filters: `age` (band), `gender` (code), `account` (an Account or its id) and
`user_properties` ({name: value}, compared as text with the end user's profile properties).
Age and gender alone are answered by the person-segment rollups, the account alone by the
account rollups (`segment_rows`, `rolled_up_rows`); any other mix by the per-user rollups. A
filter added here applies to every query built on it; the raw-SQL reads (retention, funnel)
take the same condition as a subquery of end-user ids (`people_sql`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from django.db.models import Model, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import Exact

from telemetry.models import Account, EndUser
from tenants.models import Organization

from ..models import DailyAccountUsage, DailySegmentUsage
from ..rollup_dimensions_sql import ALL_SEGMENTS
from .common import feature_pk

_M = TypeVar("_M", bound=Model)

AGE_BANDS = {"<18": {"lt": 18}, "18-40": {"gte": 18, "lte": 40}, ">40": {"gt": 40}}
PERSON_FILTERS = ("age", "gender", "account", "user_properties")
# The person filters the segment rollups carry (age band × gender as rolled up), and the one
# the account rollups carry.
SEGMENT_PERSON_FILTERS = ("age", "gender")
ACCOUNT_PERSON_FILTERS = ("account",)
# Rows of rolled-up person groups (segments, accounts): same counters, `active_users` exact
# per day and group (each user is in one group a day).
ROLLED_UP_MODELS = (DailySegmentUsage, DailyAccountUsage)


class PropertyText(KeyTextTransform):
    """A JSON property as the text PostgreSQL's `->>` gives (`5`, `2.5`, `true`; NULL for a
    JSON null, as for a missing key), compared with a filter's text value. On SQLite the key
    transform gives numbers as numbers, which equal no text, and a JSON null as the text
    "null" (which `user.x=null` matched there, while the breakdown showed it as "(none)"):
    the same text as PostgreSQL's instead."""

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        lhs, params, key_transforms = self.preprocess_lhs(compiler, connection)
        # Property names are object keys, never array indexes: each a quoted member.
        path = "$" + "".join(f".{json.dumps(key)}" for key in key_transforms)
        sql = (
            f"(CASE JSON_TYPE({lhs}, %s) WHEN 'null' THEN NULL WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"
            f" ELSE CAST(JSON_EXTRACT({lhs}, %s) AS TEXT) END)"
        )
        return sql, (*params, path, *params, path)


def account_pk(account: Account | int | None) -> int | None:
    return account if account is None or isinstance(account, int) else account.pk


def person_filter(
    *,
    age: str | None = None,
    gender: str | None = None,
    account: Account | int | None = None,
    user_properties: Mapping[str, str] | None = None,
    prefix: str = "end_user__",
) -> Q:
    """The condition on a row's end user for the person filters given (empty: everyone,
    anonymous events included). `prefix=""` applies it to EndUser rows themselves."""
    condition = Q()
    if age:
        condition &= Q(**{f"{prefix}age__{op}": bound for op, bound in AGE_BANDS[age].items()})
    if gender:
        condition &= Q(**{f"{prefix}gender": gender})
    if account:
        condition &= Q(**{f"{prefix}account_id": account_pk(account)})
    for name, value in (user_properties or {}).items():
        condition &= Q(Exact(PropertyText(name, f"{prefix}properties"), value))
    return condition


def person_filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    """The person filters among `filters` (the given ones)."""
    return {k: filters[k] for k in PERSON_FILTERS if filters.get(k)}


def has_person_filter(filters: Mapping[str, Any]) -> bool:
    """Whether `filters` narrows by who the end user is (then rows without a person, the
    anonymous events, drop out and the per-user or segment rollups answer)."""
    return bool(person_filters(filters))


def rolled_up_model(filters: Mapping[str, Any]) -> type[DailySegmentUsage] | type[DailyAccountUsage] | None:
    """The rollup of person groups that answers the person filters of `filters` on its own:
    the segments for age and gender, the accounts for an account; None without a person
    filter or for any other mix (then the per-user rollups answer)."""
    people = set(person_filters(filters))
    if not people:
        return None
    if people <= set(SEGMENT_PERSON_FILTERS):
        return DailySegmentUsage
    if people <= set(ACCOUNT_PERSON_FILTERS):
        return DailyAccountUsage
    return None


def has_rolled_up_person_filter(filters: Mapping[str, Any]) -> bool:
    """Whether the person filters are all ones a group rollup carries (see `rolled_up_model`)."""
    return rolled_up_model(filters) is not None


def rolled_up_rows(
    org: Organization, filters: Mapping[str, Any], model: type[DailySegmentUsage] | type[DailyAccountUsage]
) -> QuerySet[Any]:
    """`model`'s rows (segments or accounts) of `org` kept by the person filters it carries,
    every feature's and the all-features rows alike."""
    condition = Q()
    if model is DailyAccountUsage:
        if filters.get("account"):
            condition &= Q(account_id=account_pk(filters["account"]))
    else:
        if filters.get("age"):
            condition &= Q(age_band=filters["age"])
        if filters.get("gender"):
            condition &= Q(gender=filters["gender"])
    return model.objects.filter(condition, organization=org)


def segment_rows(org: Organization, filters: Mapping[str, Any]) -> QuerySet[Any]:
    """The group rows (segments or accounts, `rolled_up_model`) answering `filters`: the
    all-features rows, or the one feature's."""
    model = rolled_up_model(filters) or DailySegmentUsage
    feature_id = feature_pk(filters.get("feature"))
    rows = rolled_up_rows(org, filters, model)
    return rows.filter(feature__isnull=True) if feature_id is None else rows.filter(feature_id=feature_id)


def dimension_segment(filters: Mapping[str, Any]) -> Q:
    """The dimension rollup's rows (DailyDimensionUsage) of the asked age band and gender:
    its rows summed over the segments when neither is asked, a tenth of the others (their
    gender is ALL_SEGMENTS too: one condition, which the planner estimates right)."""
    if not filters.get("age") and not filters.get("gender"):
        return Q(age_band=ALL_SEGMENTS)
    condition = Q()
    if filters.get("age"):
        condition &= Q(age_band=filters["age"])
    if filters.get("gender"):
        condition &= Q(gender=filters["gender"])
    return condition


def filters_apply(qs: QuerySet[_M], filters: Mapping[str, Any]) -> QuerySet[_M]:
    """`qs` narrowed by `filters`: `feature` (a Feature or its id; only for rows of one
    feature) and the person filters. Unknown or empty keys are ignored here: the request
    parsers (`analytics.filters`) refuse what no query can apply."""
    feature_id = feature_pk(filters.get("feature"))
    if feature_id is not None:
        qs = qs.filter(feature_id=feature_id)
    condition = person_filter(**person_filters(filters))
    return qs.filter(condition) if condition else qs


def people_sql(org: Organization, filters: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """`SELECT id FROM telemetry_enduser WHERE …` for the end users of `org` the person
    filters keep, with its parameters, for raw SQL (`col IN (…)`); None without a person
    filter."""
    people = person_filters(filters)
    if not people:
        return None
    qs = EndUser.objects.filter(person_filter(**people, prefix=""), organization=org).values("id")
    sql, params = qs.query.sql_with_params()
    return sql, list(params)
