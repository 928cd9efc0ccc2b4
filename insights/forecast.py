"""Daily event forecasts per feature: weekday-seasonal exponential smoothing (Holt-Winters,
multiplicative season, damped additive trend), written in numpy and vectorised over features.

Why this model: it is explainable in one sentence ("a smoothed level, a damped trend and a
weekday profile, each updated every day"), it needs no training service, and on weekly
seasonal usage it beats the seasonal-naive forecast ("same weekday last week"), which
carries last week's noise forward. The smoothing constants are chosen per feature from a
small grid by one-step-ahead error on the history. The 80 % interval comes from the
spread of those one-step errors, widened with the horizon.
"""

from datetime import date, timedelta
from itertools import product
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from analytics import queries as analytics_queries
from analytics.models import DailyFeatureUsage
from core.exceptions import DomainError, NotFound
from telemetry.queries import feature_find
from tenants.models import Organization

from .params import PREDICTION_MAX_DAYS, PREDICTION_MIN_DAYS

if TYPE_CHECKING:
    from telemetry.models import Feature

SEASON = 7
HISTORY_DAYS = 84
Z_80 = 1.2816
PHI = 0.9  # trend damping: long horizons flatten instead of extrapolating a line forever
ALPHAS = (0.1, 0.2, 0.35, 0.5)
GAMMAS = (0.05, 0.15, 0.3)
BETA = 0.05


def _smooth(
    y: np.ndarray, alpha: np.ndarray, gamma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run Holt-Winters over y (days × series, values > 0). Returns the final level, trend,
    the last SEASON seasonal factors (aligned so index 0 is the weekday after the last day)
    and the one-step-ahead log errors (days × series, NaN during warm-up)."""
    n_days, n_series = y.shape
    first_weeks = y[: 2 * SEASON] if n_days >= 2 * SEASON else y[:SEASON]
    level = first_weeks.mean(axis=0)
    weeks = first_weeks.shape[0] // SEASON
    season_block = first_weeks[: weeks * SEASON].reshape(weeks, SEASON, n_series).mean(axis=0)
    seasonal = season_block / np.maximum(season_block.mean(axis=0), 1e-9)
    trend = np.zeros(n_series)
    errors = np.full((n_days, n_series), np.nan)
    seasons = [seasonal[i] for i in range(SEASON)]
    for t in range(n_days):
        s = seasons[t % SEASON]
        forecast = (level + PHI * trend) * s
        if t >= SEASON:
            errors[t] = np.log(y[t]) - np.log(np.maximum(forecast, 1e-9))
        new_level = alpha * (y[t] / np.maximum(s, 1e-9)) + (1 - alpha) * (level + PHI * trend)
        trend = BETA * (new_level - level) + (1 - BETA) * PHI * trend
        level = new_level
        seasons[t % SEASON] = gamma * (y[t] / np.maximum(level, 1e-9)) + (1 - gamma) * s
    ordered = np.stack([seasons[(n_days + i) % SEASON] for i in range(SEASON)])
    return level, trend, ordered, errors


def forecast_matrix(history: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    """history: (days × series) daily counts, oldest first. Returns `value`, `lower`,
    `upper` arrays of shape (horizon × series), all ≥ 0."""
    y = np.clip(np.asarray(history, dtype=float), 0, None) + 1.0  # +1: zeros are valid usage
    n_series = y.shape[1]
    best_sse = np.full(n_series, np.inf)
    best: dict[str, np.ndarray] | None = None
    for alpha, gamma in product(ALPHAS, GAMMAS):
        a = np.full(n_series, alpha)
        g = np.full(n_series, gamma)
        level, trend, seasonal, errors = _smooth(y, a, g)
        sse = np.nansum(errors[2 * SEASON :] ** 2, axis=0) if len(y) > 2 * SEASON else np.nansum(errors**2, axis=0)
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        if best is None:
            best = {"level": level, "trend": trend, "seasonal": seasonal, "errors": errors}
        else:
            best["level"] = np.where(better, level, best["level"])
            best["trend"] = np.where(better, trend, best["trend"])
            best["seasonal"] = np.where(better[None, :], seasonal, best["seasonal"])
            best["errors"] = np.where(better[None, :], errors, best["errors"])
    assert best is not None  # ALPHAS × GAMMAS is never empty
    steps = np.arange(1, horizon + 1)
    damp = np.cumsum(PHI**steps)
    point = (best["level"][None, :] + damp[:, None] * best["trend"][None, :]) * best["seasonal"][(steps - 1) % SEASON]
    point = np.maximum(point, 1.0)
    sigma = np.nanstd(best["errors"], axis=0) if np.isfinite(best["errors"]).any() else np.zeros(n_series)
    sigma = np.nan_to_num(sigma, nan=0.0)
    widen = np.sqrt(1 + 0.05 * (steps - 1))[:, None]
    lower = point * np.exp(-Z_80 * sigma[None, :] * widen)
    upper = point * np.exp(Z_80 * sigma[None, :] * widen)
    return {"value": point - 1.0, "lower": np.maximum(lower - 1.0, 0.0), "upper": np.maximum(upper - 1.0, 0.0)}


def seasonal_naive(history: np.ndarray, horizon: int) -> np.ndarray:
    """The baseline to beat: each future day repeats the same weekday of the last week."""
    last_week = np.asarray(history, dtype=float)[-SEASON:]
    return np.stack([last_week[i % SEASON] for i in range(horizon)])


def _feature_history(org: Organization, *, end: date, feature: "Feature | None" = None) -> pd.DataFrame:
    rows = DailyFeatureUsage.objects.filter(
        organization=org, date__gt=end - timedelta(days=HISTORY_DAYS), date__lte=end
    )
    if feature is not None:
        rows = rows.filter(feature=feature)
    return pd.DataFrame.from_records(
        rows.values_list("feature_id", "feature__key", "date", "event_count"),
        columns=["feature_id", "feature_key", "date", "event_count"],
    )


def usage_prediction(
    org: Organization, *, days: int | str, feature: "Feature | int | str | None" = None
) -> dict[str, Any]:
    """Next `days` (7–30) of daily events per feature, with an 80 % interval:
    `{days, features: [{feature_key, points: [{date, value, lower, upper}]}]}`.

    `feature` is a Feature of `org`, its id or its key (another organisation's → 404).
    The forecast starts the day after the last complete rolled-up day."""
    try:
        days = int(days)
    except (TypeError, ValueError):
        raise DomainError("days must be an integer.", errors={"days": ["A valid integer is required."]})
    if not PREDICTION_MIN_DAYS <= days <= PREDICTION_MAX_DAYS:
        raise DomainError(
            f"days must be between {PREDICTION_MIN_DAYS} and {PREDICTION_MAX_DAYS}.",
            errors={"days": [f"Ensure this value is between {PREDICTION_MIN_DAYS} and {PREDICTION_MAX_DAYS}."]},
        )
    chosen = None
    if feature is not None and not hasattr(feature, "pk"):
        chosen = feature_find(org, feature)
        if chosen is None:
            raise NotFound("Feature not found.")
    elif feature is not None:
        chosen = cast("Feature", feature)  # it has a pk: the Feature itself, not its id or key
        if chosen.organization_id != org.id:
            raise NotFound("Feature not found.")

    # Forecast from the last complete day: today's partial count would drag the level down.
    last = analytics_queries.last_complete_day(org)
    if last is None:
        return {"days": days, "features": []}
    frame = _feature_history(org, end=last, feature=chosen)
    if frame.empty:
        return {"days": days, "features": []}
    keys = frame.drop_duplicates("feature_id").set_index("feature_id")["feature_key"]
    span = pd.date_range(last - timedelta(days=HISTORY_DAYS - 1), last, freq="D")
    matrix = frame.pivot_table(index="date", columns="feature_id", values="event_count", aggfunc="sum")
    matrix.index = pd.DatetimeIndex(matrix.index)
    # Start each feature at its first day of data, not at the window's start, so a new
    # feature is not forecast from weeks of zeros it never had.
    first_seen = matrix.apply(lambda col: col.first_valid_index())
    matrix = matrix.reindex(span).fillna(0.0)
    for feature_id, first_day in first_seen.items():
        matrix.loc[matrix.index < first_day, feature_id] = np.nan
    # Fill the pre-history with the feature's first week so the smoother starts level.
    matrix = matrix.bfill()
    result = forecast_matrix(matrix.to_numpy(), days)
    dates = [last + timedelta(days=i) for i in range(1, days + 1)]
    features: list[dict[str, Any]] = []
    for column, feature_id in enumerate(matrix.columns):
        points = [
            {
                "date": dates[i].isoformat(),
                "value": round(float(result["value"][i, column]), 2),
                "lower": round(float(result["lower"][i, column]), 2),
                "upper": round(float(result["upper"][i, column]), 2),
            }
            for i in range(days)
        ]
        features.append({"feature_id": int(feature_id), "feature_key": keys[feature_id], "points": points})
    features.sort(key=lambda f: -sum(p["value"] for p in f["points"]))
    return {"days": days, "features": features}
