"""Anomaly detectors: pure functions over rollup frames, no database, no Django.

- `timeseries` — per feature and metric, each day against its own weekday-aware baseline
  (spikes and drops; these are the anomalies that alert), with `low_volume` judging small
  counts by their likelihood;
- `outliers` — the replaced system's cross-sectional rule, a ranking of unusual features.
"""

from .common import Finding, severity_for
from .low_volume import LOW_VOLUME_MEAN, TAIL_ALPHA
from .outliers import OUTLIER_COLUMNS, OUTLIER_DETECTOR, feature_vectors, outlier_features, outlier_scores
from .timeseries import (
    BASELINE_WEEKS,
    METRICS,
    MIN_BASELINE_WEEKS,
    MIN_HISTORY_DAYS,
    SCORE_THRESHOLD,
    SEASON,
    SPREAD_WINDOW,
    TIMESERIES_DETECTOR,
    metric_matrix,
    robust_scores,
    timeseries_anomalies,
)

__all__ = [
    "BASELINE_WEEKS",
    "LOW_VOLUME_MEAN",
    "METRICS",
    "MIN_BASELINE_WEEKS",
    "MIN_HISTORY_DAYS",
    "OUTLIER_COLUMNS",
    "OUTLIER_DETECTOR",
    "SCORE_THRESHOLD",
    "SEASON",
    "SPREAD_WINDOW",
    "TAIL_ALPHA",
    "TIMESERIES_DETECTOR",
    "Finding",
    "feature_vectors",
    "metric_matrix",
    "outlier_features",
    "outlier_scores",
    "robust_scores",
    "severity_for",
    "timeseries_anomalies",
]
