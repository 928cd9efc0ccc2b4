"""Anomaly detectors: pure functions over rollup frames, no database, no Django.

- `timeseries` — per feature and metric, each day against its own weekday-aware baseline
  (spikes and drops; these are the anomalies that alert), with `low_volume` judging small
  counts by their likelihood;
- `outliers` — the replaced system's cross-sectional rule, a ranking of unusual features.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .common import Finding, severity_for
from .outliers import OUTLIER_COLUMNS, OUTLIER_DETECTOR, feature_vectors, outlier_features, outlier_scores

if TYPE_CHECKING:
    from .low_volume import LOW_VOLUME_MEAN, TAIL_ALPHA
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

# The time-series detector works on numpy and pandas frames; it is imported when first
# asked for, so the web process can draw the outlier ranking (plain Python) without them.
_LAZY = {
    "LOW_VOLUME_MEAN": "low_volume",
    "TAIL_ALPHA": "low_volume",
    **dict.fromkeys(
        (
            "BASELINE_WEEKS",
            "METRICS",
            "MIN_BASELINE_WEEKS",
            "MIN_HISTORY_DAYS",
            "SCORE_THRESHOLD",
            "SEASON",
            "SPREAD_WINDOW",
            "TIMESERIES_DETECTOR",
            "metric_matrix",
            "robust_scores",
            "timeseries_anomalies",
        ),
        "timeseries",
    ),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
