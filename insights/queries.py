"""What the Insights page, the API, the narrative and the digests count, defined once.

An anomaly is a time-series finding: a day out of line with the feature's own weekday
baseline. The cross-sectional "outlier features" rule always names about a tenth of the
features, so it is shown as a ranking ("Unusual features") and never counted, listed or
alerted as an anomaly.
"""

from django.db.models import QuerySet, Subquery
from django.db.models.functions import Abs

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
