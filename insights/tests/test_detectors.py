"""Detectors on hand-made series with known answers."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from insights import detectors

START = date(2026, 1, 5)  # a Monday


def frame_from(series: dict, *, start=START, duration=100.0):
    """{feature_id: [daily event counts]} → rollup frame (users = events / 4)."""
    rows = []
    for feature_id, counts in series.items():
        for offset, count in enumerate(counts):
            rows.append(
                {
                    "feature_id": feature_id,
                    "date": start + timedelta(days=offset),
                    "event_count": count,
                    "daily_active_users": count // 4,
                    "avg_session_duration": duration,
                    "sessions": max(count // 2, 1),
                    "total_session_duration": duration * max(count // 2, 1),
                }
            )
    return pd.DataFrame(rows)


def weekly(n_days, *, level=400, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    profile = np.array([1.0, 1.1, 1.1, 1.0, 0.9, 0.5, 0.4])
    days = np.arange(n_days)
    return list(np.round(level * profile[days % 7] * np.exp(rng.normal(0, noise, n_days))).astype(int))


def test_quiet_on_clean_weekly_series():
    series = {i: weekly(84, level=100 * (i + 1), seed=i) for i in range(10)}
    frame = frame_from(series)
    found = detectors.timeseries_anomalies(frame, start=START + timedelta(days=56), end=START + timedelta(days=83))
    assert found == []


def test_weekend_dip_is_not_a_drop():
    # Strong weekly season: Saturday is 20 % of a weekday, every week. Weekday-aware
    # baselines compare Saturday with Saturdays, so nothing is reported.
    counts = [1000 if (d % 7) < 5 else 200 for d in range(70)]
    frame = frame_from({1: counts})
    assert detectors.timeseries_anomalies(frame, start=START + timedelta(days=42), end=START + timedelta(days=69)) == []


def test_spike_and_drop_found_with_expected_value_and_severity():
    counts = weekly(84, level=500, seed=3)
    spike_day, drop_day = 60, 71
    counts[spike_day] *= 3
    counts[drop_day] = int(counts[drop_day] * 0.3)
    frame = frame_from({7: counts})
    found = detectors.timeseries_anomalies(
        frame, start=START + timedelta(days=50), end=START + timedelta(days=83), metrics=("event_count",)
    )
    by_day = {f.date: f for f in found}
    assert set(by_day) == {START + timedelta(days=spike_day), START + timedelta(days=drop_day)}
    spike = by_day[START + timedelta(days=spike_day)]
    drop = by_day[START + timedelta(days=drop_day)]
    assert spike.feature_id == 7 and spike.detector == "timeseries" and spike.metric == "event_count"
    assert spike.score > detectors.SCORE_THRESHOLD and spike.details["direction"] == "spike"
    assert drop.score < -detectors.SCORE_THRESHOLD and drop.details["direction"] == "drop"
    # The expected value is the typical same-weekday value, within noise.
    clean = weekly(84, level=500, seed=3)
    assert spike.expected == pytest.approx(np.median([clean[spike_day - 7 * k] for k in range(1, 7)]), rel=0.1)
    assert spike.value == counts[spike_day]
    assert spike.severity in {"medium", "high"}
    assert 2.5 < spike.details["ratio"] < 3.5


def test_minimum_history_keeps_detector_silent():
    counts = weekly(30, level=500)
    counts[25] *= 5  # huge, but only 25 days of history: below MIN_HISTORY_DAYS
    frame = frame_from({1: counts})
    assert detectors.MIN_HISTORY_DAYS > 25
    assert detectors.timeseries_anomalies(frame, start=START, end=START + timedelta(days=29)) == []


def test_tiny_counts_are_not_reported():
    counts = [2, 1, 2, 1, 2, 0, 1] * 10
    counts[60] = 8  # ×4, but eight events is noise
    frame = frame_from({1: counts})
    assert detectors.timeseries_anomalies(frame, start=START + timedelta(days=42), end=START + timedelta(days=69)) == []


def test_missing_rows_count_as_zero_usage_drop():
    counts = weekly(70, level=300, seed=5)
    frame = frame_from({1: counts})
    missing_day = START + timedelta(days=64)
    frame = frame[frame["date"] != missing_day]  # no rollup row: no usage that day
    found = detectors.timeseries_anomalies(
        frame, start=START + timedelta(days=60), end=START + timedelta(days=69), metrics=("event_count",)
    )
    assert [(f.date, f.details["direction"], f.value) for f in found] == [(missing_day, "drop", 0.0)]


def test_severity_cuts():
    assert detectors.severity_for(4.2) == "low"
    assert detectors.severity_for(-6.5) == "medium"
    assert detectors.severity_for(12) == "high"


# --- The replaced system's cross-sectional rule ---------------------------------------------


def replaced_rule(vectors: np.ndarray):
    """The old system, verbatim in spirit: zscore per column, L2 norm, ≥ 90th percentile."""
    z = stats.zscore(vectors, axis=0)
    norms = np.linalg.norm(z, axis=1)
    threshold = np.percentile(norms, 90)
    return {i for i, n in enumerate(norms) if n >= threshold}, norms, z


def test_outlier_features_reproduces_the_replaced_rule():
    rng = np.random.default_rng(11)
    rows = []
    n_features = 30
    for feature_id in range(n_features):
        for offset in range(7):
            events = int(rng.integers(50, 500)) * (10 if feature_id == 4 else 1)
            rows.append(
                {
                    "feature_id": feature_id,
                    "date": START + timedelta(days=offset),
                    "event_count": events,
                    "daily_active_users": int(rng.integers(5, 60)),
                    "avg_session_duration": float(rng.uniform(30, 300)),
                }
            )
    frame = pd.DataFrame(rows)
    # The old system's vector: total events, mean session duration, mean daily users.
    grouped = frame.groupby("feature_id")
    vectors = np.column_stack(
        [
            grouped["event_count"].sum(),
            grouped["avg_session_duration"].mean(),
            grouped["daily_active_users"].mean(),
        ]
    )
    expected_ids, norms, z = replaced_rule(vectors)

    found = detectors.outlier_features(frame.to_dict("records"), end=START + timedelta(days=6))
    assert {f.feature_id for f in found} == expected_ids
    assert 4 in expected_ids
    # Ranked by norm, highest first, with the z-scores of each column.
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)
    assert found[0].feature_id == int(np.argmax(norms))
    for finding in found:
        assert finding.score == pytest.approx(norms[finding.feature_id])
        zs = finding.details["z_scores"]
        assert [zs["event_count"], zs["avg_session_duration"], zs["daily_active_users"]] == pytest.approx(
            list(z[finding.feature_id])
        )
        assert finding.detector == "outlier_features"
        assert finding.details["label"] == "outlier features"


def test_outlier_features_constant_column_and_too_few_features():
    frame = frame_from({1: [10] * 3, 2: [20] * 3, 3: [300] * 3, 4: [15] * 3})
    found = detectors.outlier_features(frame.to_dict("records"), end=START + timedelta(days=2))
    # avg_session_duration is constant (100) → z = 0 for that column, never NaN.
    assert [f.feature_id for f in found] == [3]
    assert found[0].details["z_scores"]["avg_session_duration"] == 0.0
    assert detectors.outlier_features(frame_from({1: [1], 2: [5]}).to_dict("records"), end=START) == []


def test_session_duration_needs_enough_events():
    counts = [6] * 70
    frame = frame_from({1: counts})
    day = START + timedelta(days=63)
    frame.loc[frame["date"] == day, "avg_session_duration"] = 10.0  # from 100 s, but over 6 events
    assert detectors.timeseries_anomalies(frame, start=START + timedelta(days=42), end=START + timedelta(days=69)) == []
    busy = frame_from({1: [60] * 70})
    busy.loc[busy["date"] == day, "avg_session_duration"] = 10.0
    found = detectors.timeseries_anomalies(busy, start=START + timedelta(days=42), end=START + timedelta(days=69))
    assert [(f.date, f.metric, f.details["direction"]) for f in found] == [(day, "avg_session_duration", "drop")]
