"""DESIGN's analytics filter set read from a query string (or a saved segment): `feature`
(or `feature_id`), `age`, `gender`, `account` and `user.<property>=value`, plus `segment=<id>`
which stands for the filters saved under that id (a filter given beside it wins).

`filter_set_parse` returns the filters every query function takes (`analytics.queries`'
`filters`): `feature` (a Feature), `age` (band), `gender` (code), `account` (an Account, by
its external id) and `user_properties` ({property: value}); only the given ones. Bad input,
an unknown feature or account (another organisation's included) raises `DomainError` naming
the field, so the API answers 400 and the pages show the message next to the filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.exceptions import DomainError
from core.query_params import Query, fail, filters_supported, parse_id, query_text
from telemetry.models import Account, EndUser
from telemetry.queries import feature_find

from .models import Segment

if TYPE_CHECKING:
    from tenants.models import Organization

AGE_BANDS = ("<18", "18-40", ">40")
GENDERS = ("F", "M", "O")
USER_PREFIX = "user."
# A property name as identify/track send it: letters, digits, `_`, `-`, `$` (PostHog-style
# `$initial_…`) and single dots; at most one filter per property.
_PROPERTY_RE = re.compile(r"[A-Za-z0-9_$][A-Za-z0-9_$.\-]{0,99}")
MAX_PROPERTY_FILTERS = 10
MAX_PROPERTY_VALUE = 200


def property_check(param: str, field: str) -> str:
    """`user.plan` → `plan`, refusing (on `field`) a name no profile or event can carry."""
    name = param[len(USER_PREFIX) :]
    if not _PROPERTY_RE.fullmatch(name) or ".." in name:
        fail(field, "Give a property name of letters, digits, _, -, $ or dots (at most 100).")
    return name


def property_name(param: str) -> str:
    return property_check(param, param)


def _age(raw: str) -> str:
    if raw not in AGE_BANDS:
        fail("age", f"Choose one of: {', '.join(AGE_BANDS)}.")
    return raw


def _gender(raw: str) -> str:
    code = EndUser.gender_code(raw)
    if code is None:
        fail("gender", f"Choose one of: {', '.join(GENDERS)}.")
    return code


def _feature(org: Organization, raw: str, field: str) -> Any:
    feature = feature_find(org, raw)
    if feature is None:
        fail(field, "Unknown feature.")
    return feature


def _account(org: Organization, raw: str) -> Account:
    """`org`'s account with external id `raw`; unknown (or another organisation's) is a 400,
    as an unknown feature is."""
    account = Account.objects.filter(organization=org, external_id=raw).first()
    if account is None:
        fail("account", "Unknown account.")
    return account


def segment_filters_of(org: Organization, segment_id: int) -> dict[str, str] | None:
    """The saved filters of segment `segment_id` of `org`, or None when there is none."""
    return Segment.objects.filter(organization=org, pk=segment_id).values_list("filters", flat=True).first()


def _segment_filters(org: Organization, raw: str) -> dict[str, str]:
    """The saved filters of segment `raw` of `org` as query-string values."""
    pk = parse_id(raw)
    saved = segment_filters_of(org, pk) if pk is not None else None
    if saved is None:
        fail("segment", "Unknown segment.")
    return saved


def filter_values(org: Organization, query: Query) -> dict[str, str]:
    """The raw filter values of `query` with `segment` expanded (typed values win; a typed
    `feature` or `feature_id` replaces the segment's feature)."""
    if query is None:
        return {}
    typed: dict[str, str] = {}
    for name in query.keys():
        if name in ("feature", "feature_id", "age", "gender", "account") or name.startswith(USER_PREFIX):
            value = query_text(query, name)
            if value is not None:
                typed[name] = value
    raw_segment = query_text(query, "segment")
    if not raw_segment:
        return typed
    saved = _segment_filters(org, raw_segment)
    if "feature" in typed or "feature_id" in typed:
        saved = {k: v for k, v in saved.items() if k not in ("feature", "feature_id")}
    return saved | typed


def filters_validate(org: Organization, values: Mapping[str, str]) -> dict[str, Any]:
    """Validated filters from raw values ({name: text}): see the module docstring."""
    filters: dict[str, Any] = {}
    by_key, by_id = values.get("feature"), values.get("feature_id")
    if by_key and by_id:
        fail("feature_id", "Give feature or feature_id, not both.")
    if by_key or by_id:
        filters["feature"] = _feature(org, by_key or by_id or "", "feature" if by_key else "feature_id")
    if values.get("age"):
        filters["age"] = _age(values["age"])
    if values.get("gender"):
        filters["gender"] = _gender(values["gender"])
    if values.get("account"):
        filters["account"] = _account(org, values["account"])
    properties = {}
    for name, value in values.items():
        if name.startswith(USER_PREFIX):
            if len(value) > MAX_PROPERTY_VALUE:
                fail(name, f"At most {MAX_PROPERTY_VALUE} characters.")
            properties[property_name(name)] = value
    if len(properties) > MAX_PROPERTY_FILTERS:
        fail("user", f"At most {MAX_PROPERTY_FILTERS} user property filters.")
    if properties:
        filters["user_properties"] = dict(sorted(properties.items()))
    return filters


def filter_set_parse(org: Organization, query: Query) -> dict[str, Any]:
    """The validated filter set of `query` (segment expanded); only the given filters.

    A saved filter that no longer holds (its feature deleted, a value edited in the admin) is
    refused as the segment's: the query never named that filter, so naming it left the pages
    nothing to leave out, and they dropped the range and every other filter with it."""
    values = filter_values(org, query)
    try:
        return filters_validate(org, values)
    except DomainError as exc:
        field = next(iter(exc.errors), "")
        if field and query is not None and field not in query and query_text(query, "segment"):
            message = exc.errors[field][0] if exc.errors.get(field) else exc.detail
            fail("segment", f"This segment's {field} filter no longer applies: {message}")
        raise


def filter_cache_key(filters: Mapping[str, Any]) -> dict[str, Any]:
    """`filters` with the feature and account as their ids: hashable-friendly arguments for
    the query cache."""
    return {k: (v.pk if k in ("feature", "account") and hasattr(v, "pk") else v) for k, v in filters.items() if v}


ALL_FILTERS = ("start", "end", "feature", "feature_id", "age", "gender", "account", "segment")


def filters_refuse(query: Query, refused: tuple[str, ...] = ()) -> None:
    """Refuse, naming it, each filter in `refused` (one this endpoint cannot apply) and any
    `event.<property>` filter (event properties are a breakdown, never a filter)."""
    if query is None:
        return
    supported = tuple(n for n in query.keys() if n.startswith(USER_PREFIX))
    filters_supported(query, tuple(n for n in ALL_FILTERS if n not in refused) + supported)
