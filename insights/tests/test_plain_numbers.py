"""What the web process draws is plain Python: the outlier ranking's statistics agree with
numpy's and the forecast with the numpy model it replaced (that nothing there loads numpy:
usage_platform/tests/test_lean_imports.py)."""

import math
import random
from datetime import date, timedelta

import numpy as np
import pytest

from analytics.models import DailyFeatureUsage
from insights import forecast
from insights.detectors import outliers
from insights.tests.helpers import features_make, yesterday


@pytest.mark.parametrize("seed", range(6))
def test_percentile_and_histogram_match_numpy(seed):
    rng = np.random.default_rng(seed)
    values = list(rng.gamma(2.0, 1.5, int(rng.integers(1, 60))))
    if seed == 0:
        values = [2.5] * 7  # one value: numpy spans it by ±0.5
    if seed == 1:
        values = [0.0, 1.0, 2.0, 3.0, 4.0]  # values on the bin edges
    for q in (0, 10, 50, 90, 100):
        assert outliers.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    counts, edges = np.histogram(values, bins=10)
    ours = outliers.histogram(values, 10)
    assert [c for _, _, c in ours] == list(counts)
    assert [lo for lo, _, _ in ours] + [ours[-1][1]] == pytest.approx(list(edges))


def test_scores_match_the_population_zscore():
    rng = np.random.default_rng(7)
    vectors = {fid: tuple(float(v) for v in rng.uniform(1, 500, 3)) for fid in range(25)}
    vectors[3] = (5.0, vectors[3][1], vectors[3][2])
    matrix = np.array(list(vectors.values()))
    z = (matrix - matrix.mean(axis=0)) / matrix.std(axis=0)
    scores = outliers.outlier_scores(vectors)
    assert [x for s in scores.values() for x in s.z] == pytest.approx(list(z.ravel()))
    assert [s.norm for s in scores.values()] == pytest.approx(list(np.linalg.norm(z, axis=1)))


# --- Forecasts ----------------------------------------------------------------------------

WEEK = (1.0, 1.1, 1.1, 1.05, 0.95, 0.55, 0.5)
# The numpy implementation this replaced (insights/forecast.py at 999446c) on HISTORY.
GOLDEN = {
    "value": {
        0: [50.603567841, 406.824455809, 3422.448836589],
        6: [25.288362504, 181.15824098, 1537.875659592],
        13: [25.360217172, 181.556492243, 1539.401197789],
    },
    "lower": {
        0: [43.441131196, 348.30188416, 2928.187084211],
        6: [21.170336179, 151.667487494, 1287.233467522],
        13: [20.756565033, 148.618191435, 1259.811413066],
    },
    "upper": {
        0: [58.920351761, 475.151988575, 4000.110751824],
        6: [30.171291115, 216.345718473, 1837.283475308],
        13: [30.93799427, 221.746128265, 1880.99109364],
    },
}


def history(levels=(40, 300, 2500), days=84):
    """Weekly seasonal series with a trend and a deterministic wobble, one per level."""
    return [
        [
            float(round(level * WEEK[d % 7] * (1 + 0.3 * d / 83) * (1 + 0.15 * math.sin(1.7 * d + k))))
            for k, level in enumerate(levels)
        ]
        for d in range(days)
    ]


def test_forecast_equals_the_replaced_numpy_model():
    result = forecast.forecast_matrix(history(), 14)
    for name, steps in GOLDEN.items():
        for step, expected in steps.items():
            assert result[name][step] == pytest.approx(expected, rel=1e-9), (name, step)


def test_a_noisy_start_weighs_as_the_replaced_model_weighed_it():
    # Four weeks whose first two are wild: the one-step errors of the first two weeks do not
    # choose the smoothing constants (they would choose others here).
    rng = random.Random(0)
    rows = [
        [float(round(60 * WEEK[d % 7] * (rng.uniform(0.3, 1.7) if d < 14 else rng.uniform(0.9, 1.1))))]
        for d in range(28)
    ]
    expected = {
        "value": [61.419928607, 70.250051768, 66.86639415, 67.529545236, 55.371525429, 29.026040322, 34.866958592],
        "lower": [46.282977755, 52.602871354, 49.716477179, 49.877876235, 40.584252316, 21.011140135, 25.131741955],
        "upper": [81.402751947, 93.707051109, 89.81560296, 91.305318495, 75.417121921, 39.95940019, 48.228969153],
    }
    for many in (False, True):  # one series in Python; with copies, numpy
        width = forecast.VECTORISED_FROM if many else 1
        result = forecast.forecast_matrix([row * width for row in rows], 7)
        for name, values in expected.items():
            assert [step[-1] for step in result[name]] == pytest.approx(values, rel=1e-9), (name, many)


def test_many_series_at_once_give_the_same_numbers_as_one_at_a_time():
    levels = [5 + 37 * i for i in range(forecast.VECTORISED_FROM + 5)]
    rows = history(levels)
    together = forecast.forecast_matrix(rows, 30)  # numpy (forecast_vectorised)
    for k in (0, 7, len(levels) - 1):
        alone = forecast.forecast_matrix([[row[k]] for row in rows], 30)  # plain Python
        for name in ("value", "lower", "upper"):
            assert [step[k] for step in together[name]] == pytest.approx([step[0] for step in alone[name]], rel=1e-12)


def test_a_new_feature_is_forecast_from_its_first_day_not_from_zeros(org):
    features = features_make(org, 2)
    end = yesterday()
    old, new = features
    for offset in range(forecast.HISTORY_DAYS):
        day = end - timedelta(days=offset)
        DailyFeatureUsage.objects.create(organization=org, feature=old, date=day, event_count=100)
        if offset < 10 and offset != 4:  # ten days old, a day without events among them
            DailyFeatureUsage.objects.create(organization=org, feature=new, date=day, event_count=70 + offset)
    keys, matrix = forecast._feature_history(org, end=end)
    assert list(keys) == [old.pk, new.pk]
    column = [row[1] for row in matrix]
    # Before its first day: its first day's count; then its rows, zero on the day without.
    assert column[: forecast.HISTORY_DAYS - 10] == [79.0] * (forecast.HISTORY_DAYS - 10)
    assert column[-10:] == [79.0, 78.0, 77.0, 76.0, 75.0, 0.0, 73.0, 72.0, 71.0, 70.0]
    assert [row[0] for row in matrix] == [100.0] * forecast.HISTORY_DAYS


def test_session_weighted_duration_and_mean_daily_users():
    rows = [
        {
            "feature_id": 1,
            "event_count": 10,
            "avg_session_duration": 100.0,
            "daily_active_users": 4,
            "sessions": 3,
            "total_session_duration": 300.0,
        },
        {
            "feature_id": 1,
            "event_count": 5,
            "avg_session_duration": 20.0,
            "daily_active_users": 2,
            "sessions": 1,
            "total_session_duration": 20.0,
        },
        {
            "feature_id": 2,
            "event_count": 7,
            "avg_session_duration": 50.0,
            "daily_active_users": 1,
            "sessions": 0,
            "total_session_duration": 0.0,
        },
    ]
    vectors = outliers.feature_vectors(rows)
    assert vectors == {1: (15.0, 80.0, 3.0), 2: (7.0, 0.0, 1.0)}  # (3·100 + 1·20) / 4 sessions


def test_one_rule_flags_outliers_for_the_chart_and_the_findings():
    rng = random.Random(9)
    rows = [
        {
            "feature_id": fid,
            "date": date(2026, 1, 1 + day),
            "event_count": rng.randrange(10, 500) * (8 if fid == 4 else 1),
            "avg_session_duration": rng.uniform(20, 200),
            "daily_active_users": rng.randrange(1, 40),
        }
        for fid in range(30)
        for day in range(5)
    ]
    scores = outliers.outlier_scores(outliers.feature_vectors(rows))
    threshold = outliers.percentile([s.norm for s in scores.values()], outliers.OUTLIER_PERCENTILE)
    chart = outliers.outlier_ids(scores, threshold)
    assert 4 in chart and len(chart) == 3
    assert [f.feature_id for f in outliers.outlier_features(rows, end=date(2026, 1, 5))] == chart
    flat = [{**row, "event_count": 10, "avg_session_duration": 30.0, "daily_active_users": 3} for row in rows]
    assert outliers.outlier_features(flat, end=date(2026, 1, 5)) == []
