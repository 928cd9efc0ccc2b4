"""`breakdown_anonymous_events`: the events a breakdown by who the end user is shows in no
bar, those sent without an end user (they have no age band, gender, account or property)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db.models import QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from tenants.models import Organization

from ...models import DailyFeatureUsage, DailyOrgUsage
from ..cache import cached
from ..common import feature_pk
from ..filters import has_person_filter, segment_rows
from .sources import person_dimension


@cached
def breakdown_anonymous_events(
    org: Organization, *, dimension: str, start: date, end: date, filters: dict[str, Any] | None = None
) -> int | None:
    """Events over start..end under `filters` sent without an end user when `dimension` is a
    person one (`person_dimension`): what its values sum to less than the events figure.
    None for any other dimension, whose values hold every event.

    The organisation's (or the feature's) rolled-up events less the person segments' (built
    from the per-user rows: identified events only), as the events figure and the bars are
    read from the rollups (one query); a person filter already leaves every anonymous event out."""
    if not person_dimension(dimension):
        return None
    filters = {k: v for k, v in (filters or {}).items() if v}
    if has_person_filter(filters):
        return 0
    feature_id = feature_pk(filters.get("feature"))
    every: QuerySet[Any] = (
        DailyOrgUsage.objects.filter(organization=org)
        if feature_id is None
        else DailyFeatureUsage.objects.filter(organization=org, feature_id=feature_id)
    )
    # Both sums in one statement: two scalar subqueries on the organisation's row.
    figures = (
        Organization.objects.filter(pk=org.pk)
        .values(
            total=Coalesce(_events(every, start, end), 0),
            known=Coalesce(_events(segment_rows(org, filters), start, end), 0),
        )
        .get()
    )
    return max(0, figures["total"] - figures["known"])


def _events(rows: QuerySet[Any], start: date, end: date) -> Subquery:
    within = rows.filter(date__gte=start, date__lte=end)
    return Subquery(within.values("organization").annotate(n=Sum("event_count")).values("n"))
