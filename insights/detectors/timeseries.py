"""The time-series detector: per feature and metric, each day against a trailing,
weekday-aware robust baseline. Pure functions over rollup frames, no database, no Django.

Input frames come from `DailyFeatureUsage` rows with the columns
`feature_id, date, event_count, daily_active_users, avg_session_duration` (one row per
feature and day; a missing row means no usage that day).

The expected value is the median of the same weekday in the previous weeks, the spread is
the median absolute residual of the previous four weeks. Work happens in log space
(`log1p`), so a ×3 spike and a ×0.3 drop are symmetric and a feature with 1,000 events a
day is judged on the same relative scale as one with 100,000. Counts whose baseline is
below `low_volume.LOW_VOLUME_MEAN` a day are judged by their likelihood instead (see
`low_volume`). Everything is vectorised over a (days × features) matrix.
"""

import warnings
from collections.abc import Iterable
from datetime import date

import numpy as np
import pandas as pd

from .common import Finding, severity_for
from .low_volume import LOW_VOLUME_FLOOR, LOW_VOLUME_MEAN, baseline_mean, predictive_tails, tail_score

METRICS = ("event_count", "daily_active_users", "avg_session_duration")
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
# Overdispersion of a low-volume series: the mean of its squared Pearson residuals over the
# previous SPREAD_WINDOW days, leaving out the days that were outliers at the time (beyond
# OUTLIER_PEARSON_SQUARED = 4 sigmas of the spread known before them; a first estimate caps
# each day at MAX_PEARSON_SQUARED). Poisson data gives 1 ± sqrt(2/m) over m days: a series
# counts as overdispersed (and its prediction is widened by the whole ratio) only beyond
# DISPERSION_MARGIN such standard errors, so Poisson series keep their recall and clearly
# bursty ones are judged on their own spread. Measured on bench/insights_quality.py (docs/
# benchmarks.md, "Low-volume recall per seed"): with past anomalies counted (capped at 16),
# a third of the ×4 spikes missed at 5–15 events a day had their prediction widened by the
# spike before them; leaving them out lifts recall by about 2 points. Never widening gives
# 5–15 false alarms per 100 feature-days on negative-binomial series (variance 2.5–5 × the
# mean); this keeps them at 2–3.
MAX_PEARSON_SQUARED = 16.0
DISPERSION_MARGIN = 2.0
OUTLIER_PEARSON_SQUARED = 16.0
# Window days the outlier rule may leave out before the window counts as too short.
OUTLIERS_LEFT_OUT = 2


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


def robust_scores(
    values: np.ndarray, *, counts: bool = True, judged: np.ndarray | None = None, threshold: float = SCORE_THRESHOLD
) -> dict[str, np.ndarray]:
    """For a (days × series) matrix: expected value, residual spread and score for every
    cell, NaN where the history is too short.

    expected[t] = median of the same weekday in the previous BASELINE_WEEKS weeks (log space);
    spread[t]   = 1.4826 × median |residual| over the previous SPREAD_WINDOW days;
    score[t]    = (log1p(value) − expected) / max(spread, MIN_LOG_SPREAD, poisson).

    For counts, `poisson` = 1/sqrt(expected + 1), the standard deviation of a Poisson
    count on the log scale: 8 events where 2 are usual is not news, 800 where 200 are is.
    Counts whose expected value is below LOW_VOLUME_MEAN are scored from their tail
    probability instead (`low_volume`), only on the `judged` days (a boolean per day,
    default all), where `tail` holds that probability (NaN elsewhere).
    """
    logs = np.log1p(np.clip(values, 0, None))
    n_days, n_series = logs.shape
    lagged = np.full((BASELINE_WEEKS, n_days, n_series), np.nan)
    for k in range(1, BASELINE_WEEKS + 1):
        shift = SEASON * k
        if shift < n_days:
            lagged[k - 1, shift:, :] = logs[:-shift, :]
    weeks = np.sum(~np.isnan(lagged), axis=0)
    enough = weeks >= MIN_BASELINE_WEEKS
    # All-NaN slices (no history yet) are expected here and masked just below.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected_log = np.nanmedian(lagged, axis=0)
    expected_log[~enough] = np.nan
    expected = np.expm1(expected_log)
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
            floor = np.maximum(floor, 1.0 / np.sqrt(expected + 1.0))
    with np.errstate(all="ignore"):
        score = residual / np.maximum(spread, floor)
    tail = np.full_like(logs, np.nan)
    if counts:
        mean = baseline_mean(np.expm1(lagged))
        mean[~enough] = np.nan
        with np.errstate(invalid="ignore"):
            low = np.isfinite(score) & (mean < LOW_VOLUME_MEAN)
        if judged is not None:
            low &= judged[:, None]
        if low.any():
            # Judged on the mean: the reported expected value is the one the tail was taken from.
            expected = np.where(low, mean, expected)
            dispersion = _dispersion(values, mean, weeks)
            judged_mean = np.maximum(mean[low], LOW_VOLUME_FLOOR)
            tail[low] = predictive_tails(
                values[low], judged_mean, baseline_days=weeks[low].astype(float), dispersion=dispersion[low]
            )
            score[low] = tail_score(tail[low], spike=values[low] > judged_mean, threshold=threshold)
    return {"expected": expected, "spread": spread, "score": score, "tail": tail}


def _dispersion(values: np.ndarray, mean: np.ndarray, weeks: np.ndarray) -> np.ndarray:
    """Per cell, how much wider than counting noise the series has been over the previous
    SPREAD_WINDOW days (≥ 1; 1 = Poisson): the mean of its squared Pearson residuals against
    the same-weekday baseline mean and that mean's own uncertainty, when it exceeds 1 by
    more than DISPERSION_MARGIN standard errors; else 1.

    A day that was an outlier against the spread known before it (squared residual beyond
    OUTLIER_PEARSON_SQUARED times that spread) is left out: a past anomaly is not evidence
    that the series is wild, and counting it widened the next spike's prediction enough to
    miss it. A bursty series keeps its wide days, since they fit its own wide spread."""
    with np.errstate(all="ignore"):
        variance = np.maximum(mean, 0.5) * (1.0 + 1.0 / np.maximum(weeks, 1))
        pearson = (values - mean) ** 2 / variance
    capped = pd.DataFrame(np.minimum(pearson, MAX_PEARSON_SQUARED))
    spread_before = capped.rolling(SPREAD_WINDOW, min_periods=MIN_SPREAD_POINTS).mean().shift(1).to_numpy()
    with np.errstate(invalid="ignore"):
        ordinary = pearson <= OUTLIER_PEARSON_SQUARED * np.maximum(np.nan_to_num(spread_before, nan=1.0), 1.0)
    window = pd.DataFrame(np.where(ordinary, pearson, np.nan)).rolling(
        SPREAD_WINDOW, min_periods=MIN_SPREAD_POINTS - OUTLIERS_LEFT_OUT
    )
    ratio = window.mean().shift(1).to_numpy()
    points = np.maximum(window.count().shift(1).to_numpy(), 1.0)
    with np.errstate(invalid="ignore"):
        overdispersed = ratio > 1.0 + DISPERSION_MARGIN * np.sqrt(2.0 / points)
    return np.nan_to_num(np.where(overdispersed, ratio, 1.0), nan=1.0)


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
        result = robust_scores(values, counts=metric != "avg_session_duration", judged=in_range, threshold=threshold)
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
            findings.append(
                _finding(
                    result,
                    values,
                    day_index,
                    series_index,
                    metric=metric,
                    threshold=threshold,
                    feature_id=int(feature_ids[series_index]),
                    day=days[day_index].date(),
                )
            )
    findings.sort(key=lambda f: (f.date, -abs(f.score)))
    return findings


def _finding(
    result: dict[str, np.ndarray],
    values: np.ndarray,
    day_index: int,
    series_index: int,
    *,
    metric: str,
    threshold: float,
    feature_id: int,
    day: date,
) -> Finding:
    value = float(values[day_index, series_index])
    expected = float(result["expected"][day_index, series_index])
    score = float(result["score"][day_index, series_index])
    tail = float(result["tail"][day_index, series_index])
    details = {
        "direction": "spike" if score > 0 else "drop",
        "ratio": (value / expected) if expected > 0 else None,
        "baseline": f"median of the same weekday over the previous {BASELINE_WEEKS} weeks (log scale)",
        "spread_log": float(result["spread"][day_index, series_index]),
        "threshold": threshold,
    }
    if np.isfinite(tail):
        # Judged by likelihood (low volume): the probability of a day at least this far out.
        details.update(test="low_volume_tail", tail_probability=tail)
    return Finding(
        feature_id=feature_id,
        date=day,
        detector=TIMESERIES_DETECTOR,
        metric=metric,
        value=value,
        expected=expected,
        score=score,
        severity=severity_for(score),
        details=details,
    )
