"""`forecast.forecast_matrix` for many series at once, in numpy: the same model, the same
grid and the same numbers (the tests compare the two), vectorised over the series.

A forecast of one feature (the pages) runs in plain Python in ~1 ms; the prediction API
without a feature forecasts every feature of the organisation, where a Python loop costs
~1 ms a series (1.8 s for 1,682) and numpy ~70 ms for all of them. Imported only then, so
a web worker loads numpy (not pandas) only if it serves that request."""

from itertools import product

import numpy as np

from .forecast_model import ALPHAS, BETA, GAMMAS, PHI, SEASON, TINY, Z_80, Matrix


def _smooth(y: np.ndarray, alpha: float, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Holt-Winters over y (days × series, values > 0): the final level and trend, the next
    SEASON seasonal factors (index 0: the weekday after the last day) and the one-step-ahead
    log errors from day SEASON on ((days - SEASON) × series)."""
    n_days, n_series = y.shape
    first_weeks = y[: 2 * SEASON] if n_days >= 2 * SEASON else y[:SEASON]
    level = first_weeks.mean(axis=0)
    weeks = first_weeks.shape[0] // SEASON
    seasonal = np.ones((SEASON, n_series))
    if weeks:
        block = first_weeks[: weeks * SEASON].reshape(weeks, SEASON, n_series).mean(axis=0)
        seasonal = block / np.maximum(block.mean(axis=0), TINY)
    trend = np.zeros(n_series)
    errors = np.zeros((max(n_days - SEASON, 0), n_series))
    seasons = [seasonal[i] for i in range(SEASON)]
    for t in range(n_days):
        s = seasons[t % SEASON]
        if t >= SEASON:
            errors[t - SEASON] = np.log(y[t]) - np.log(np.maximum((level + PHI * trend) * s, TINY))
        new_level = alpha * (y[t] / np.maximum(s, TINY)) + (1 - alpha) * (level + PHI * trend)
        trend = BETA * (new_level - level) + (1 - BETA) * PHI * trend
        level = new_level
        seasons[t % SEASON] = gamma * (y[t] / np.maximum(level, TINY)) + (1 - gamma) * s
    ordered = np.stack([seasons[(n_days + i) % SEASON] for i in range(SEASON)])
    return level, trend, ordered, errors


def forecast_matrix(rows: list[list[float]], horizon: int) -> dict[str, Matrix]:
    """As `forecast.forecast_matrix` (rows: days × series, at least one of each)."""
    y = np.clip(np.asarray(rows, dtype=float), 0, None) + 1.0  # +1: zeros are valid usage
    n_days, n_series = y.shape
    best_sse = np.full(n_series, np.inf)
    level = trend = np.zeros(n_series)
    seasonal = np.ones((SEASON, n_series))
    errors = np.zeros((max(n_days - SEASON, 0), n_series))
    for alpha, gamma in product(ALPHAS, GAMMAS):
        fit = _smooth(y, alpha, gamma)
        scored = fit[3][SEASON:] if n_days > 2 * SEASON else fit[3]
        sse = (scored**2).sum(axis=0)
        better = sse < best_sse
        best_sse = np.where(better, sse, best_sse)
        level, trend = np.where(better, fit[0], level), np.where(better, fit[1], trend)
        seasonal = np.where(better[None, :], fit[2], seasonal)
        errors = np.where(better[None, :], fit[3], errors)
    steps = np.arange(1, horizon + 1)
    damp = np.cumsum(PHI**steps)
    point = np.maximum((level[None, :] + damp[:, None] * trend[None, :]) * seasonal[(steps - 1) % SEASON], 1.0)
    sigma = errors.std(axis=0) if len(errors) else np.zeros(n_series)
    spread = Z_80 * sigma[None, :] * np.sqrt(1 + 0.05 * (steps - 1))[:, None]
    return {
        "value": (point - 1.0).tolist(),
        "lower": np.maximum(point * np.exp(-spread) - 1.0, 0.0).tolist(),
        "upper": np.maximum(point * np.exp(spread) - 1.0, 0.0).tolist(),
    }
