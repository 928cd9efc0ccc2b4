"""Forecast: the model on hand-made series, and the usage-prediction API."""

from datetime import timedelta

import numpy as np
import pytest

from insights import forecast
from insights.tests.helpers import features_make, rollups_make, yesterday

URL = "/api/v1/ai/usage-prediction"


def test_pure_weekly_series_is_forecast_exactly():
    week = np.array([100, 110, 120, 115, 105, 40, 30], dtype=float)
    history = np.tile(week, 10)[:, None]
    result = {k: np.asarray(v) for k, v in forecast.forecast_matrix(history, 14).items()}
    assert result["value"][:, 0] == pytest.approx(np.tile(week, 2), rel=0.03)
    assert np.all(result["lower"] <= result["value"]) and np.all(result["value"] <= result["upper"])


def test_beats_seasonal_naive_on_noisy_seasonal_data():
    rng = np.random.default_rng(3)
    week = np.array([1.0, 1.1, 1.1, 1.05, 0.95, 0.55, 0.5])
    levels = rng.uniform(50, 2000, 20)
    days = 84
    mean = levels[None, :] * np.tile(week, days // 7 + 1)[:days, None]
    data = rng.poisson(mean * np.exp(rng.normal(0, 0.1, mean.shape))).astype(float)
    train, test = data[:-14], data[-14:]

    def mape(pred):
        return np.mean(np.abs(pred - test) / np.maximum(test, 1))

    model = {k: np.asarray(v) for k, v in forecast.forecast_matrix(train, 14).items()}
    assert mape(model["value"]) < 0.85 * mape(np.asarray(forecast.seasonal_naive(train, 14)))
    coverage = np.mean((test >= model["lower"]) & (test <= model["upper"]))
    assert 0.65 <= coverage <= 0.97  # an honest 80 % interval


def test_zeros_and_short_history_stay_non_negative():
    history = np.zeros((10, 2))
    history[:, 1] = [0, 3, 0, 5, 0, 0, 1, 2, 0, 4]
    result = {k: np.asarray(v) for k, v in forecast.forecast_matrix(history, 7).items()}
    assert np.all(result["value"] >= 0) and np.all(result["lower"] >= 0)
    assert result["value"][:, 0] == pytest.approx(0, abs=1e-6)


def test_api_predicts_each_feature(analyst_client, org, django_assert_max_num_queries):
    features = features_make(org, 3)
    rollups_make(org, features, end=yesterday(), days=56)
    with django_assert_max_num_queries(4):  # … and the days flagged as anomalous
        response = analyst_client.get(URL, {"days": 10})
    assert response.status_code == 200
    body = response.json()
    assert body["days"] == 10 and len(body["features"]) == 3
    first = body["features"][0]
    assert first["feature_key"] == features[2].key  # the biggest feature first
    assert [p["date"] for p in first["points"]] == [(yesterday() + timedelta(days=i)).isoformat() for i in range(1, 11)]
    for point in first["points"]:
        assert point["lower"] <= point["value"] <= point["upper"]
    # Feature 2's level is 2× feature 0's (helpers: level × (1 + index/2)).
    mean = {f["feature_key"]: np.mean([p["value"] for p in f["points"]]) for f in body["features"]}
    assert mean[features[2].key] / mean[features[0].key] == pytest.approx(2.0, rel=0.15)

    one = analyst_client.get(URL, {"days": 7, "feature": features[1].key}).json()
    assert [f["feature_key"] for f in one["features"]] == [features[1].key]
    by_id = analyst_client.get(URL, {"days": 7, "feature": str(features[1].id)}).json()
    assert by_id == one


@pytest.mark.parametrize("days", ["6", "31", "abc", "400"])
def test_api_days_out_of_range_is_400(analyst_client, days):
    response = analyst_client.get(URL, {"days": days})
    assert response.status_code == 400 and "days" in response.json()["errors"]


def test_api_other_orgs_or_unknown_feature_is_400_and_empty_org(other_client, analyst_client, org):
    features = features_make(org, 1)
    rollups_make(org, features, end=yesterday(), days=30)
    for ref in (features[0].key, str(features[0].id), "nope"):
        response = other_client.get(URL, {"feature": ref})
        assert response.status_code == 400, response.content
        assert response.json()["errors"] == {"feature": ["Unknown feature."]}
    assert other_client.get(URL).json() == {"days": 14, "features": []}
    assert analyst_client.get(URL).json()["days"] == 14


def test_forecast_starts_after_the_last_complete_day(analyst_client, org):
    features = features_make(org, 1)
    rollups_make(org, features, end=yesterday() + timedelta(days=1), days=40)  # includes today
    body = analyst_client.get(URL, {"days": 7}).json()
    assert body["features"][0]["points"][0]["date"] == (yesterday() + timedelta(days=1)).isoformat()


def test_a_flagged_spike_is_forecast_from_as_its_expected_baseline(org):
    """A burst the detector flagged two days ago is not a new level: forecast from it as the
    baseline it expected there, the forecast stays at the usual level; unflagged, the same
    burst lifts it (the demo's Scream: 139 events expected against 70 a month)."""
    from analytics.models import DailyFeatureUsage
    from insights.models import Anomaly

    features = features_make(org, 1)
    spike_day = yesterday() - timedelta(days=1)
    rollups_make(org, features, end=yesterday(), days=84, spikes={(0, spike_day): 8.0})
    usual = DailyFeatureUsage.objects.get(feature=features[0], date=spike_day - timedelta(days=7)).event_count

    def mean_forecast():
        points = forecast.usage_prediction(org, days=7, feature=features[0])["features"][0]["points"]
        return float(np.mean([p["value"] for p in points]))

    lifted = mean_forecast()
    Anomaly.objects.create(
        organization=org, feature=features[0], date=spike_day, detector="timeseries", metric="event_count",
        value=usual * 8.0, expected=float(usual), score=9.0,
    )  # fmt: skip
    steady = mean_forecast()
    weekly_mean = float(np.mean([200.0 * f for f in (1.0, 1.1, 1.1, 1.05, 0.95, 0.6, 0.5)]))
    assert steady == pytest.approx(weekly_mean, rel=0.15)
    assert lifted > steady * 1.2
