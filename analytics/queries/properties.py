"""A user-property filter (`user.<name>=value`) answered from the dimension rollup
(DailyDimensionUsage's `user.<name>` rows: events, sessions, session time per value, per
person segment, for all features and per feature) instead of the per-user rows, which at
10 M events cost seconds over 90 days.

The rollup answers exactly only where it carries the asked value on every day of the range:
the property is one of the day's rolled-up keys (a key past the per-day cap, or one nobody
had that day, has no row: such a day is not told apart, so the per-user rows answer), the
value was not folded into "other" (no folded row of the property that day) and the day was
rolled up with sessions. One small query over the all-features rows decides it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.db.models import Count, Q, QuerySet

from tenants.models import Organization

from ..models import DailyDimensionUsage
from ..rollup_dimensions_sql import FOLDED, NONE, USERS_MARK
from .common import feature_pk
from .filters import dimension_segment, person_filters

USER_PREFIX = "user."


def _asked(filters: Mapping[str, Any]) -> tuple[str, str] | None:
    """(dimension, value) when the person filters are one user property, with age band or
    gender or neither (what the rollup carries), and a value the rollup keeps as given."""
    people = person_filters(filters)
    properties = people.get("user_properties") or {}
    if len(properties) != 1 or set(people) - {"user_properties", "age", "gender"}:
        return None
    ((name, value),) = properties.items()
    # "(none)" and "" stand for a missing property and the folded values in the rollup.
    if not isinstance(value, str) or value in (NONE, FOLDED):
        return None
    return f"{USER_PREFIX}{name}", value


def property_answers(org: Organization, filters: Mapping[str, Any], first: date, last: date) -> bool:
    """Whether `property_rows` answer `filters` exactly over first..last (see the module
    docstring): one query over the all-features rows, none without a user-property filter."""
    asked = _asked(filters)
    if asked is None:
        return False
    dimension, _value = asked
    days = DailyDimensionUsage.objects.filter(
        organization=org, feature__isnull=True, dimension__in=[dimension, USERS_MARK], date__gte=first, date__lte=last
    ).aggregate(
        marked=Count("date", distinct=True, filter=Q(dimension=USERS_MARK)),
        carried=Count("date", distinct=True, filter=Q(dimension=dimension)),
        folded=Count("pk", filter=Q(dimension=dimension, value=FOLDED)),
        unrolled=Count("pk", filter=Q(dimension=dimension, sessions__isnull=True)),
    )
    return not (days["folded"] or days["unrolled"] or days["marked"] != days["carried"])


def property_rows(
    org: Organization, filters: Mapping[str, Any], *, per_feature: bool = False
) -> QuerySet[DailyDimensionUsage]:
    """The rollup rows of the filtered user-property value — all-features rows (every
    feature's with `per_feature`), or the one feature's — narrowed by age band and gender.
    Exact where `property_answers` says so."""
    asked = _asked(filters)
    if asked is None:
        raise ValueError("no user-property filter the dimension rollup carries")
    dimension, value = asked
    feature_id = feature_pk(filters.get("feature"))
    rows = DailyDimensionUsage.objects.filter(
        dimension_segment(filters), organization=org, dimension=dimension, value=value
    )
    return rows.filter(feature__isnull=not per_feature) if feature_id is None else rows.filter(feature_id=feature_id)
