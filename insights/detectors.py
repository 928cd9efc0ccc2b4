"""Anomaly detectors: pure functions over rollup frames, no database, no Django.

Input frames come from `DailyFeatureUsage` rows with the columns
`feature_id, date, event_count, daily_active_users, avg_session_duration` (one row per
feature and day; a missing row means no usage that day).

Two detectors:

- `outlier_features` — the replaced system's cross-sectional rule, kept for compatibility:
  per feature the vector [event_count, avg_session_duration, daily_active_users] over a
  window, z-scored per column across features, L2 norm, features at or above the
  90th percentile of the norms, ranked by norm. It always reports about a tenth of the
  features, so it is a ranking of unusual features, not an alarm.
- `timeseries_anomalies` — per feature and metric, each day against a trailing,
  weekday-aware robust baseline: the expected value is the median of the same weekday in
  the previous weeks, the spread is the median absolute residual of the previous four
  weeks. Work happens in log space (`log1p`), so a ×3 spike and a ×0.3 drop are symmetric
  and a feature with 10 events a day is judged on the same relative scale as one with
  10,000. Everything is vectorised over a (days × features) matrix.
"""

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

METRICS = ("event_count", "daily_active_users", "avg_session_duration")
# The replaced system's column order for the cross-sectional vector.
OUTLIER_COLUMNS = ("event_count", "avg_session_duration", "daily_active_users")

OUTLIER_DETECTOR = "outlier_features"
TIMESERIES_DETECTOR = "timeseries"

# Same-weekday history used for the expected value: up to 6 previous weeks, at least 3.
SEASON = 7
BASELINE_WEEKS = 6
MIN_BASELINE_WEEKS = 3
# Residual spread: the previous 28 days of residuals, at least 14 of them.
SPREAD_WINDOW = 28
MIN_SPREAD_POINTS = 14
# Minimum history before the detector speaks for a day (same-weekday baseline + spread).
MIN_HISTORY_DAYS = SEASON * MIN_BASELINE_WEEKS + MIN_SPREAD_POINTS

# A robust score of 4 (in MAD-sigmas of the residual) flags a day. Tuned on
# `bench/insights_quality.py` over ten seeds: at 3.5 clean data reaches 0.87 false alarms
# per 100 feature-days (too close to the 1.0 target); at 4.0 recall on ×3/×0.3 injections
# stays ≥ 0.94 with ≤ 0.47 false alarms.
SCORE_THRESHOLD = 4.0
# Noise floor for the spread in log space (≈ 8 %): a perfectly flat series would otherwise
# turn a 1 % wobble into a huge score.
MIN_LOG_SPREAD = 0.08
# Tiny counts are noise: both the day and its expectation below this are never reported,
# and a change smaller than MIN_ABS_CHANGE units is never reported.
MIN_LEVEL = {"event_count": 5.0, "daily_active_users": 3.0, "avg_session_duration": 1.0}
MIN_ABS_CHANGE = {"event_count": 5.0, "daily_active_users": 3.0, "avg_session_duration": 5.0}
# A mean session duration over a handful of events is noise: judge it only on days with
# at least this many events.
MIN_EVENTS_FOR_DURATION = 10
SEVERITY_CUTS = ((9.0, "high"), (6.0, "medium"), (0.0, "low"))


@dataclass
class Finding:
    feature_id: int | None
    date: date
    detector: str
    metric: str
    value: float
    expected: float | None
    score: float
    severity: str
    details: dict[str, Any] = field(default_factory=dict)


def severity_for(score: float) -> str:
    magnitude = abs(score)
    for cut, name in SEVERITY_CUTS:
        if magnitude >= cut:
            return name
    return "low"


def _finite(value: Any) -> float:
    value = float(value)
    return value if np.isfinite(value) else 0.0


# --- Cross-sectional: "outlier features" --------------------------------------------------


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
                    "values": {c: _finite(vectors.loc[feature_id, c]) for c in OUTLIER_COLUMNS},
                },
            )
        )
    return findings


# --- Time series ---------------------------------------------------------------------------


def metric_matrix(frame: pd.DataFrame, metric: str, days: pd.DatetimeIndex, feature_ids: Iterable[int]) -> pd.DataFrame:
    """(days × features) for one metric. Counts are 0 on days without a row; the mean
    session duration is undefined (NaN) there."""
    if frame.empty:
        matrix = pd.DataFrame(index=days, columns=list(feature_ids), dtype=float)
    else:
        matrix = frame.pivot_table(index="date", columns="feature_id", values=metric, aggfunc="sum")
        matrix.index = pd.DatetimeIndex(matrix.index)
        matrix = matrix.reindex(index=days, columns=list(feature_ids)).astype(float)
    if metric == "avg_session_duration":
        if not frame.empty:
            counts = frame.pivot_table(index="date", columns="feature_id", values="event_count", aggfunc="sum")
            counts.index = pd.DatetimeIndex(counts.index)
            counts = counts.reindex(index=days, columns=list(feature_ids)).fillna(0)
            matrix = matrix.where(counts > 0)
        return matrix
    return matrix.fillna(0.0)


def robust_scores(values: np.ndarray, *, counts: bool = True) -> dict[str, np.ndarray]:
    """For a (days × series) matrix: expected value, residual spread and robust score for
    every cell, NaN where the history is too short.

    expected[t] = median of the same weekday in the previous BASELINE_WEEKS weeks (log space);
    spread[t]   = 1.4826 × median |residual| over the previous SPREAD_WINDOW days;
    score[t]    = (log1p(value) − expected) / max(spread, MIN_LOG_SPREAD, poisson).

    For counts, `poisson` = 1/sqrt(expected + 1), the standard deviation of a Poisson
    count on the log scale: 8 events where 2 are usual is not news, 800 where 200 are is.
    """
    logs = np.log1p(np.clip(values, 0, None))
    n_days, n_series = logs.shape
    lagged = np.full((BASELINE_WEEKS, n_days, n_series), np.nan)
    for k in range(1, BASELINE_WEEKS + 1):
        shift = SEASON * k
        if shift < n_days:
            lagged[k - 1, shift:, :] = logs[:-shift, :]
    enough = np.sum(~np.isnan(lagged), axis=0) >= MIN_BASELINE_WEEKS
    # All-NaN slices (no history yet) are expected here and masked just below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected_log = np.nanmedian(lagged, axis=0)
    expected_log[~enough] = np.nan
    residual = logs - expected_log
    spread = (
        pd.DataFrame(np.abs(residual))
        .rolling(SPREAD_WINDOW, min_periods=MIN_SPREAD_POINTS)
        .median()
        .shift(1)
        .to_numpy()
        * 1.4826
    )
    floor = np.full_like(logs, MIN_LOG_SPREAD)
    if counts:
        with np.errstate(all="ignore"):
            floor = np.maximum(floor, 1.0 / np.sqrt(np.expm1(expected_log) + 1.0))
    with np.errstate(all="ignore"):
        score = residual / np.maximum(spread, floor)
    return {"expected": np.expm1(expected_log), "spread": spread, "score": score}


def timeseries_anomalies(
    frame: pd.DataFrame,
    *,
    start: date,
    end: date,
    feature_ids: Iterable[int] | None = None,
    metrics: Iterable[str] = METRICS,
    threshold: float = SCORE_THRESHOLD,
) -> list[Finding]:
    """Spikes and drops on each day in [start, end] for each feature and metric. The frame
    should hold at least MIN_HISTORY_DAYS before `start`; days without enough history are
    silently skipped (the detector stays quiet rather than guess)."""
    if frame.empty:
        return []
    frame = frame.copy()
    frame["date"] = pd.to_datetime(frame["date"])
    first = min(frame["date"].min(), pd.Timestamp(start))
    days = pd.date_range(first, pd.Timestamp(end), freq="D")
    if feature_ids is None:
        feature_ids = sorted(frame["feature_id"].unique())
    feature_ids = list(feature_ids)
    if not feature_ids:
        return []
    in_range = np.asarray((days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end)))
    findings = []
    for metric in metrics:
        matrix = metric_matrix(frame, metric, days, feature_ids)
        values = matrix.to_numpy(dtype=float)
        result = robust_scores(values, counts=metric != "avg_session_duration")
        score, expected = result["score"], result["expected"]
        with np.errstate(invalid="ignore"):
            flagged = (
                (np.abs(score) >= threshold)
                & in_range[:, None]
                & (np.maximum(values, expected) >= MIN_LEVEL[metric])
                & (np.abs(values - expected) >= MIN_ABS_CHANGE[metric])
            )
        flagged &= np.isfinite(score)
        if metric == "avg_session_duration":
            counts = metric_matrix(frame, "event_count", days, feature_ids).to_numpy(dtype=float)
            flagged &= counts >= MIN_EVENTS_FOR_DURATION
        for day_index, series_index in zip(*np.nonzero(flagged), strict=True):
            value = float(values[day_index, series_index])
            exp = float(expected[day_index, series_index])
            s = float(score[day_index, series_index])
            findings.append(
                Finding(
                    feature_id=int(feature_ids[series_index]),
                    date=days[day_index].date(),
                    detector=TIMESERIES_DETECTOR,
                    metric=metric,
                    value=value,
                    expected=exp,
                    score=s,
                    severity=severity_for(s),
                    details={
                        "direction": "spike" if s > 0 else "drop",
                        "ratio": (value / exp) if exp > 0 else None,
                        "baseline": f"median of the same weekday over the previous {BASELINE_WEEKS} weeks (log scale)",
                        "spread_log": float(result["spread"][day_index, series_index]),
                        "threshold": threshold,
                    },
                )
            )
    findings.sort(key=lambda f: (f.date, -abs(f.score)))
    return findings
