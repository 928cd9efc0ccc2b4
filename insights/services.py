"""Insights services: anomaly detection runs, anomaly reads and status changes, chart data.
The anomaly digests and the daily export live in `insights.notify`, webhook CRUD and
delivery in `insights.webhooks`.

Every function takes the organisation first; reads come from the rollup tables
(`DailyFeatureUsage`, `DailyOrgUsage`), never from raw events.

numpy, pandas and the time-series detector are imported inside the functions that detect:
the URLconf imports this module, and a web process should not carry ~150 MB of numeric
libraries (docs/decisions.md). What pages draw (the outlier ranking's chart data, the
forecasts) is plain Python.
"""

import logging
from collections.abc import Iterable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Abs
from django.utils import timezone

from analytics import queries as analytics_queries
from analytics.models import DailyFeatureUsage
from core.exceptions import DomainError, NotFound
from core.rows import row_update
from telemetry.models import Feature
from tenants.models import Organization, User

from .detectors import outliers
from .explain import anomalies_explain
from .models import Anomaly

if TYPE_CHECKING:
    import pandas as pd

    from .detectors import Finding

logger = logging.getLogger(__name__)

DETECT_DAYS = 7  # a run re-checks the last week, so late data that changed a day is seen
OUTLIER_WINDOW_DAYS = 30
ROLLUP_COLUMNS = [
    "feature_id",
    "date",
    "event_count",
    "daily_active_users",
    "avg_session_duration",
    "sessions",
    "total_session_duration",
]


def _rollup_frame(
    org: Organization, start: date, end: date, feature_ids: Iterable[int] | None = None
) -> "pd.DataFrame":
    import pandas as pd

    rows = DailyFeatureUsage.objects.filter(organization=org, date__gte=start, date__lte=end)
    if feature_ids is not None:
        rows = rows.filter(feature_id__in=list(feature_ids))
    frame = pd.DataFrame.from_records(rows.values_list(*ROLLUP_COLUMNS).order_by(), columns=ROLLUP_COLUMNS)
    return frame


# --- Detection --------------------------------------------------------------------------


def _finding_fields(finding: "Finding") -> dict[str, Any]:
    return {
        "value": float(finding.value),
        "expected": None if finding.expected is None else float(finding.expected),
        "score": float(finding.score),
        "severity": finding.severity,
        "details": finding.details,
    }


@transaction.atomic
def anomalies_upsert(
    org: Organization, findings: Iterable["Finding"], *, start: date, end: date, detector_names: Iterable[str]
) -> list[Anomaly]:
    """Store findings keyed by (organisation, feature, date, detector, metric): new keys are
    created, known keys get fresh numbers (status and notification stay), and open,
    never-notified anomalies in [start, end] that the run no longer finds are removed (the
    day was re-rolled with late data). Returns the newly created rows."""
    existing = {
        (a.feature_id, a.date, a.detector, a.metric): a
        for a in Anomaly.objects.filter(
            organization=org, date__gte=start, date__lte=end, detector__in=list(detector_names)
        )
    }
    now = timezone.now()
    to_create: list[Anomaly] = []
    to_update: list[Anomaly] = []
    seen: set[tuple[int | None, date, str, str]] = set()
    for finding in findings:
        key = (finding.feature_id, finding.date, finding.detector, finding.metric)
        if key in seen:
            continue
        seen.add(key)
        fields = _finding_fields(finding)
        row = existing.get(key)
        if row is None:
            to_create.append(
                Anomaly(
                    organization=org,
                    feature_id=finding.feature_id,
                    date=finding.date,
                    detector=finding.detector,
                    metric=finding.metric,
                    created_at=now,
                    updated_at=now,
                    **fields,
                )
            )
        elif any(getattr(row, name) != value for name, value in fields.items()):
            if row.value != fields["value"] or row.expected != fields["expected"]:
                row.explanation = None  # other numbers: explained again after this run
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = now
            to_update.append(row)
    # Never notified: by neither channel of the digest (a webhook receiver told of it would
    # never hear it was withdrawn).
    stale = [
        row.pk
        for key, row in existing.items()
        if key not in seen
        and row.status == Anomaly.Status.OPEN
        and row.notified_at is None
        and row.emailed_at is None
        and row.webhooks_queued_at is None
    ]
    if stale:
        Anomaly.objects.filter(pk__in=stale).delete()
    if to_update:
        Anomaly.objects.bulk_update(
            to_update,
            ["value", "expected", "score", "severity", "details", "explanation", "updated_at"],
            batch_size=500,
        )
    if to_create:
        Anomaly.objects.bulk_create(to_create, batch_size=500)
        if not to_create[0].pk:  # backends without RETURNING ids
            keys = {(a.feature_id, a.date, a.detector, a.metric) for a in to_create}
            to_create = [
                a
                for a in Anomaly.objects.filter(organization=org, created_at=now)
                if (a.feature_id, a.date, a.detector, a.metric) in keys
            ]
    return to_create


def anomalies_detect(org: Organization, *, end: date | None = None, days: int = DETECT_DAYS) -> list[Anomaly]:
    """Run both detectors for the `days` days ending at `end` (default: the last complete
    rolled-up day), upsert the findings and explain the new or changed time-series ones
    (`explain`). Returns the anomalies created by this run (the ones alerts are about)."""
    from . import detectors

    if end is None:
        end = analytics_queries.last_complete_day(org)
        if end is None:
            return []
    start = end - timedelta(days=days - 1)
    # History the time-series detector needs before the first day it judges.
    history_days = detectors.SEASON * detectors.BASELINE_WEEKS + detectors.SPREAD_WINDOW
    frame = _rollup_frame(org, start - timedelta(days=history_days), end)
    if frame.empty:
        return []
    findings = detectors.timeseries_anomalies(frame, start=start, end=end)
    window = frame[frame["date"] > end - timedelta(days=OUTLIER_WINDOW_DAYS)]
    findings += detectors.outlier_features(window.to_dict("records"), end=end)
    created = anomalies_upsert(
        org,
        findings,
        start=start,
        end=end,
        detector_names=(detectors.TIMESERIES_DETECTOR, detectors.OUTLIER_DETECTOR),
    )
    explained = anomalies_explain(org, start=start, end=end)
    logger.info(
        "anomalies org=%s %s..%s: %d findings, %d new, %d explained",
        org.id,
        start,
        end,
        len(findings),
        len(created),
        explained,
    )
    return created


# --- Reads and status --------------------------------------------------------------------


def anomalies_list(
    org: Organization,
    *,
    status: str | None = None,
    severity: str | None = None,
    start: date | None = None,
    end: date | None = None,
    detector: str | None = None,
    feature: "Feature | int | None" = None,
) -> QuerySet[Anomaly]:
    """Anomalies of `org`, newest day first and strongest first, with their feature."""
    rows = Anomaly.objects.filter(organization=org).select_related("feature")
    if status:
        rows = rows.filter(status=status)
    if severity:
        rows = rows.filter(severity=severity)
    if start:
        rows = rows.filter(date__gte=start)
    if end:
        rows = rows.filter(date__lte=end)
    if detector:
        rows = rows.filter(detector=detector)
    if feature:
        rows = rows.filter(feature_id=getattr(feature, "pk", feature))
    return rows.order_by("-date", Abs("score").desc(), "id")


def anomaly_get(org: Organization, anomaly_id: int) -> Anomaly:
    anomaly = Anomaly.objects.filter(organization=org, pk=anomaly_id).select_related("feature").first()
    if anomaly is None:
        raise NotFound("Anomaly not found.")
    return anomaly


def anomaly_set_status(org: Organization, anomaly_id: int, status: str, *, user: User | None) -> Anomaly:
    if status not in Anomaly.Status.values:
        raise DomainError(
            f"Unknown status {status!r}.", errors={"status": [f"Choose one of {', '.join(Anomaly.Status.values)}."]}
        )
    anomaly = anomaly_get(org, anomaly_id)
    now = timezone.now()
    details = {
        **(anomaly.details or {}),
        "status_changed_by": getattr(user, "email", None),
        "status_changed_at": now.isoformat(),
    }
    return row_update(anomaly, missing="Anomaly not found.", status=status, updated_at=now, details=details)


def chart_data(org: Organization, *, start: date, end: date, bins: int = 10) -> dict[str, Any]:
    """The cross-sectional picture over [start, end]: per feature the raw metrics, their
    z-scores across features, the norm; a histogram of the norms; the 90th-percentile
    threshold the "outlier features" rule uses. Plain Python (`detectors.outliers`): the
    Insights page calls it in a web process."""
    if start > end:
        raise DomainError("start must be on or before end.", errors={"start": ["Must be on or before end."]})
    rows = DailyFeatureUsage.objects.filter(organization=org, date__gte=start, date__lte=end)
    vectors = outliers.feature_vectors(rows.values(*ROLLUP_COLUMNS).order_by())
    base = {"start": start.isoformat(), "end": end.isoformat(), "metrics": list(outliers.OUTLIER_COLUMNS)}
    if not vectors:
        return {**base, "threshold": None, "features": [], "histogram": []}
    scores = outliers.outlier_scores(vectors)
    norms = [s.norm for s in scores.values()]
    threshold = outliers.percentile(norms, outliers.OUTLIER_PERCENTILE)
    flagged = set(outliers.outlier_ids(scores, threshold))
    names = dict(
        (fid, (key, name))
        for fid, key, name in Feature.objects.filter(organization=org, pk__in=list(vectors)).values_list(
            "id", "key", "name"
        )
    )
    features = []
    # Highest norm first; equal norms in feature id order (pandas left their order to its sort).
    for feature_id, score in sorted(scores.items(), key=lambda item: (-item[1].norm, item[0])):
        key, name = names.get(feature_id, ("", ""))
        features.append(
            {
                "feature_id": feature_id,
                "feature_key": key,
                "feature_name": name or key,
                "metrics": {c: round(v, 3) for c, v in zip(outliers.OUTLIER_COLUMNS, vectors[feature_id], strict=True)},
                "z_scores": {c: round(z, 4) for c, z in zip(outliers.OUTLIER_COLUMNS, score.z, strict=True)},
                "norm": round(score.norm, 4),
                "outlier": feature_id in flagged,
            }
        )
    histogram = [
        {"lower": round(lower, 4), "upper": round(upper, 4), "count": count}
        for lower, upper, count in outliers.histogram(norms, bins)
    ]
    return {**base, "threshold": round(threshold, 4), "features": features, "histogram": histogram}
