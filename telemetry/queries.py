"""Read side of telemetry for the apps above it: an organisation's features by the
references people and SDKs use for them, and the late-data marks waiting for the rollup."""

from datetime import date, datetime
from typing import NamedTuple

from django.db.models import Count, Min

from core.query_params import parse_id
from tenants.models import Organization

from .models import DirtyDay, Feature


def feature_find(org: Organization, ref: object, *, by_key: bool = True) -> Feature | None:
    """The feature of `org` whose id is `ref` (an int or ASCII digits), else, with `by_key`,
    whose key is `ref` (a key may be digits too: "2024" is a key before it is an unknown id),
    else the one feature whose name is `ref` whatever its case (what a person types into a
    filter box; two features of that name are no match). None when nothing matches; another
    organisation's feature is never found."""
    features = Feature.objects.filter(organization=org)
    pk = parse_id(ref)
    feature = features.filter(pk=pk).first() if pk is not None else None
    if feature is None and by_key and ref is not None:
        feature = features.filter(key=str(ref)).first()
        if feature is None:
            named = list(features.filter(name__iexact=str(ref))[:2])
            feature = named[0] if len(named) == 1 else None
    return feature


class LateDataBacklog(NamedTuple):
    marks: int
    oldest_day: date | None
    oldest_marked_at: datetime | None


def late_data_backlog() -> LateDataBacklog:
    """The late-data marks (`DirtyDay`) waiting for the rollup: how many, the oldest day
    marked, and when the longest-waiting mark was set: one aggregate over the marks (at most
    one per organisation and day, deleted as the rollup takes them). Those of an organisation
    being deleted are left out, as the rollup leaves them (its deletion takes them)."""
    waiting = DirtyDay.objects.filter(organization__deletion_requested_at__isnull=True)
    found = waiting.aggregate(marks=Count("pk"), oldest_day=Min("date"), oldest_marked_at=Min("marked_at"))
    return LateDataBacklog(found["marks"], found["oldest_day"], found["oldest_marked_at"])
