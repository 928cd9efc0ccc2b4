"""What the Insights page, the API, the narrative and the digests count, defined once.

An anomaly is a time-series finding: a day out of line with the feature's own weekday
baseline. The cross-sectional "outlier features" rule always names about a tenth of the
features, so it is shown as a ranking ("Unusual features") and never counted, listed or
alerted as an anomaly.
"""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db.models import Model, Q, QuerySet, Subquery
from django.db.models.functions import Abs
from django.utils import timezone

from tenants.models import Organization

from .models import Anomaly

ANOMALY_DETECTOR = "timeseries"
RANKING_DETECTOR = "outlier_features"
UNUSUAL_FEATURES_SHOWN = 10


def anomalies_open(org: Organization) -> QuerySet[Anomaly]:
    """The open anomalies of `org`, newest day first and strongest first, with their feature.
    Strongest by |score|, as the table and the API sort: a drop's score is negative."""
    return (
        Anomaly.objects.filter(organization=org, detector=ANOMALY_DETECTOR, status=Anomaly.Status.OPEN)
        .select_related("feature")
        .order_by("-date", Abs("score").desc(), "id")
    )


def anomalies_open_count(org: Organization) -> int:
    return Anomaly.objects.filter(organization=org, detector=ANOMALY_DETECTOR, status=Anomaly.Status.OPEN).count()


def unusual_features(org: Organization, *, limit: int = UNUSUAL_FEATURES_SHOWN) -> list[Anomaly]:
    """The latest "outlier features" ranking (the last day it was computed for), most
    unusual first: one read."""
    ranking = Anomaly.objects.filter(organization=org, detector=RANKING_DETECTOR)
    latest = ranking.order_by("-date").values("date")[:1]
    return list(ranking.filter(date=Subquery(latest)).select_related("feature").order_by("-score", "id")[:limit])


def unnotified_claimed(
    model: type[Model],
    org: Organization,
    given: Iterable[Model],
    *,
    day_field: str,
    unnotified_days: int | None,
    mark: str,
) -> "QuerySet[Any]":
    """`model`'s rows of `org` that the digest's channel `mark` (`insights.channels`) has not
    covered yet: those `given`, plus (with `unnotified_days`) every one of that many last
    days, so that a run whose e-mail or enqueue failed is picked up by the next one. Read
    again rather than trusted (another run may have sent them), and claimed until the
    caller's transaction ends (FOR UPDATE SKIP LOCKED): a run beside it (two rollups'
    evaluations) skips them instead of sending them a second time. Rows notified before the
    channels were marked apart have `notified_at` alone, and are done."""
    scope = Q(pk__in=[row.pk for row in given])
    if unnotified_days is not None:
        scope |= Q(**{f"{day_field}__gte": timezone.now().date() - timedelta(days=unnotified_days)})
    rows = model._default_manager.select_for_update(skip_locked=True, of=("self",))
    return rows.filter(scope, organization=org, notified_at__isnull=True, **{f"{mark}__isnull": True})
