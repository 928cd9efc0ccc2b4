"""The replaced system's cross-sectional rule, kept for compatibility: per feature the vector
[event_count, avg_session_duration, daily_active_users] over a window, z-scored per column
across features, L2 norm, features at or above the 90th percentile of the norms,
ranked by norm. It always reports about a tenth of the features, so it is a ranking of
unusual features ("Unusual features" on the Insights page), never an alarm."""

import warnings
from datetime import date

import numpy as np
import pandas as pd

from .common import Finding, finite

# The replaced system's column order for the cross-sectional vector.
OUTLIER_COLUMNS = ("event_count", "avg_session_duration", "daily_active_users")
OUTLIER_DETECTOR = "outlier_features"


def feature_vectors(frame: pd.DataFrame) -> pd.DataFrame:
    """Per feature over the frame's window: total events, session-weighted mean session
    duration, mean daily active users (over the days the feature has rows)."""
    if frame.empty:
        return pd.DataFrame(columns=list(OUTLIER_COLUMNS))
    work = frame.copy()
    if "sessions" in work and "total_session_duration" in work:
        weights = work["sessions"].astype(float)
        work["_dur_w"] = work["avg_session_duration"].astype(float) * weights
        work["_w"] = weights
    else:
        work["_dur_w"] = work["avg_session_duration"].astype(float)
        work["_w"] = 1.0
    grouped = work.groupby("feature_id")
    out = pd.DataFrame(
        {
            "event_count": grouped["event_count"].sum().astype(float),
            "_dur_w": grouped["_dur_w"].sum(),
            "_w": grouped["_w"].sum(),
            "daily_active_users": grouped["daily_active_users"].mean().astype(float),
        }
    )
    out["avg_session_duration"] = np.where(out["_w"] > 0, out["_dur_w"] / out["_w"].where(out["_w"] > 0, 1), 0.0)
    return out[list(OUTLIER_COLUMNS)]


def outlier_scores(vectors: pd.DataFrame) -> pd.DataFrame:
    """z-score each column across features (population σ, as the replaced system's
    `scipy.stats.zscore` did; numpy alone, since scipy cost a process ~60 MB for this one
    formula), L2 norm. A column with no spread contributes zeros instead of NaN."""
    values = vectors[list(OUTLIER_COLUMNS)].to_numpy(dtype=float)
    if len(values) == 0:
        return pd.DataFrame(columns=[*(f"z_{c}" for c in OUTLIER_COLUMNS), "norm"])
    mean, spread = values.mean(axis=0), values.std(axis=0)
    # A column with (numerically) no spread has no outliers: zeros, not NaN from dividing by
    # a zero (or rounding-noise) σ.
    flat = spread <= 1e-9 * np.maximum(1.0, np.abs(mean))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        z = (values - mean) / spread
    z[:, flat] = 0.0
    z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
    scores = pd.DataFrame(z, index=vectors.index, columns=[f"z_{c}" for c in OUTLIER_COLUMNS])
    scores["norm"] = np.linalg.norm(z, axis=1)
    return scores


def outlier_features(frame: pd.DataFrame, *, end: date, percentile: float = 90.0) -> list[Finding]:
    """The replaced system's rule: features whose z-score norm is ≥ the `percentile`-th
    percentile of all norms, highest first. Fewer than 3 features: nothing to compare."""
    vectors = feature_vectors(frame)
    if len(vectors) < 3:
        return []
    scores = outlier_scores(vectors)
    threshold = float(np.percentile(scores["norm"], percentile))
    if scores["norm"].max() <= 0:
        return []
    chosen = scores[scores["norm"] >= threshold].sort_values("norm", ascending=False)
    window = sorted(frame["date"].unique())
    findings = []
    for rank, (feature_id, row) in enumerate(chosen.iterrows(), start=1):
        findings.append(
            Finding(
                feature_id=int(feature_id),
                date=end,
                detector=OUTLIER_DETECTOR,
                metric="vector",
                value=float(row["norm"]),
                expected=threshold,
                score=float(row["norm"]),
                severity="low",
                details={
                    "label": "outlier features",
                    "rank": rank,
                    "threshold": threshold,
                    "percentile": percentile,
                    "window_start": str(window[0]),
                    "window_end": str(window[-1]),
                    "z_scores": {c: float(row[f"z_{c}"]) for c in OUTLIER_COLUMNS},
                    "values": {c: finite(vectors.loc[feature_id, c]) for c in OUTLIER_COLUMNS},
                },
            )
        )
    return findings
