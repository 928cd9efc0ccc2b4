"""Daily event forecasts per feature: weekday-seasonal exponential smoothing (Holt-Winters,
multiplicative season, damped additive trend), in plain Python.

Why this model: it is explainable in one sentence ("a smoothed level, a damped trend and a
weekday profile, each updated every day"), it needs no training service, and on weekly
seasonal usage it beats the seasonal-naive forecast ("same weekday last week"), which
carries last week's noise forward. The smoothing constants are chosen per feature from a
small grid by one-step-ahead error on the history. The 80 % interval comes from the
spread of those one-step errors, widened with the horizon.

Why plain Python: the web process serves forecasts (the Insights page, a feature's page,
the API), and numpy with pandas cost a worker ~125 MB and ~0.4 s of imports on the first
forecast it served (p95 of the Insights page on a cache miss: 0.39 s, docs/benchmarks.md).
A series is 84 numbers: one feature's forecast is ~1 ms here. The prediction API without a
feature forecasts every feature at once: from VECTORISED_FROM series numpy does it
(`forecast_vectorised`, ~70 ms for 1,682 where Python took 1.8 s).
"""

import math
from datetime import date, timedelta
from itertools import product
from typing import TYPE_CHECKING, Any, cast

from analytics import queries as analytics_queries
from analytics.models import DailyFeatureUsage
from core.exceptions import DomainError, NotFound
from telemetry.queries import feature_find
from tenants.models import Organization

from .forecast_model import ALPHAS, BETA, GAMMAS, PHI, SEASON, TINY, Z_80, Matrix
from .models import Anomaly
from .params import PREDICTION_MAX_DAYS, PREDICTION_MIN_DAYS
from .queries import ANOMALY_DETECTOR

if TYPE_CHECKING:
    from collections.abc import Sequence

    from telemetry.models import Feature

HISTORY_DAYS = 84
# From this many series at once (the prediction API without a feature), numpy: a series
# costs ~1 ms in Python (docs/decisions.md).
VECTORISED_FROM = 20


class _Fit:
    """One series smoothed with one (alpha, gamma): the final level and trend, the next
    SEASON seasonal factors (index 0: the weekday after the last day) and the one-step-ahead
    log errors from day SEASON on."""

    __slots__ = ("errors", "level", "seasonal", "trend")

    def __init__(self, y: list[float], alpha: float, gamma: float) -> None:
        n_days = len(y)
        first_weeks = y[: 2 * SEASON] if n_days >= 2 * SEASON else y[:SEASON]
        level = sum(first_weeks) / len(first_weeks)
        weeks = len(first_weeks) // SEASON
        seasons = [1.0] * SEASON  # under a week of history: no weekday profile yet
        if weeks:
            block = [sum(first_weeks[w * SEASON + d] for w in range(weeks)) / weeks for d in range(SEASON)]
            block_mean = max(sum(block) / SEASON, TINY)
            seasons = [s / block_mean for s in block]
        trend = 0.0
        errors: list[float] = []
        for t, value in enumerate(y):
            s = seasons[t % SEASON]
            if t >= SEASON:
                errors.append(math.log(value) - math.log(max((level + PHI * trend) * s, TINY)))
            new_level = alpha * (value / max(s, TINY)) + (1 - alpha) * (level + PHI * trend)
            trend = BETA * (new_level - level) + (1 - BETA) * PHI * trend
            level = new_level
            seasons[t % SEASON] = gamma * (value / max(level, TINY)) + (1 - gamma) * s
        self.level, self.trend, self.errors = level, trend, errors
        self.seasonal = [seasons[(n_days + i) % SEASON] for i in range(SEASON)]

    def sse(self, n_days: int) -> float:
        """Squared one-step errors past the first two weeks (all of them on a shorter history)."""
        scored = self.errors[SEASON:] if n_days > 2 * SEASON else self.errors
        return sum(e * e for e in scored)


def _std(values: list[float]) -> float:
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def _forecast_series(history: list[float], horizon: int) -> tuple[list[float], list[float], list[float]]:
    y = [max(float(v), 0.0) + 1.0 for v in history]  # +1: zeros are valid usage
    best: _Fit | None = None
    best_sse = math.inf
    for alpha, gamma in product(ALPHAS, GAMMAS):
        fit = _Fit(y, alpha, gamma)
        sse = fit.sse(len(y))
        if best is None or sse < best_sse:
            best, best_sse = fit, sse
    assert best is not None  # ALPHAS × GAMMAS is never empty
    sigma = _std(best.errors)
    value, lower, upper = [], [], []
    damp = 0.0
    for step in range(1, horizon + 1):
        damp += PHI**step
        point = max((best.level + damp * best.trend) * best.seasonal[(step - 1) % SEASON], 1.0)
        spread = Z_80 * sigma * math.sqrt(1 + 0.05 * (step - 1))
        value.append(point - 1.0)
        lower.append(max(point * math.exp(-spread) - 1.0, 0.0))
        upper.append(max(point * math.exp(spread) - 1.0, 0.0))
    return value, lower, upper


def forecast_matrix(history: "Sequence[Sequence[float]]", horizon: int) -> dict[str, Matrix]:
    """history: (days × series) daily counts, oldest first (any nested sequence, a numpy
    array too). Returns `value`, `lower`, `upper`, each (horizon × series), all ≥ 0. Over
    VECTORISED_FROM series at once, numpy computes it (`forecast_vectorised`)."""
    rows = [[float(v) for v in row] for row in history]
    n_series = len(rows[0]) if rows else 0
    if n_series >= VECTORISED_FROM:
        from .forecast_vectorised import forecast_matrix as vectorised

        return vectorised(rows, horizon)
    columns = [_forecast_series([row[k] for row in rows], horizon) for k in range(n_series)]
    return {
        name: [[float(columns[k][i][step]) for k in range(n_series)] for step in range(horizon)]
        for i, name in enumerate(("value", "lower", "upper"))
    }


def seasonal_naive(history: "Sequence[Sequence[float]]", horizon: int) -> Matrix:
    """The baseline to beat: each future day repeats the same weekday of the last week."""
    last_week = [[float(v) for v in row] for row in list(history)[-SEASON:]]
    return [last_week[i % SEASON] for i in range(horizon)]


def _feature_history(
    org: Organization, *, end: date, feature: "Feature | None" = None
) -> tuple[dict[int, str], Matrix]:
    """({feature id: key}, the HISTORY_DAYS days ending on `end` × those features in id
    order): each feature's daily events, zero on a day without a row, the expected count on
    a day flagged as anomalous, and before its first day of data its first day's count, so
    a new feature is not forecast from weeks of zeros it never had and the smoother starts
    level."""
    rows = DailyFeatureUsage.objects.filter(
        organization=org, date__gt=end - timedelta(days=HISTORY_DAYS), date__lte=end
    )
    if feature is not None:
        rows = rows.filter(feature=feature)
    first = end - timedelta(days=HISTORY_DAYS - 1)
    keys: dict[int, str] = {}
    series: dict[int, list[float | None]] = {}
    for feature_id, key, day, events in rows.values_list("feature_id", "feature__key", "date", "event_count"):
        keys[feature_id] = key
        days = series.setdefault(feature_id, [None] * HISTORY_DAYS)
        index = (day - first).days
        days[index] = (days[index] or 0.0) + events
    ids = sorted(series)
    # A day the detector flagged (a spike or a drop in events) is forecast from as the
    # baseline it expected there: one burst is not a new level, and the page that marks it
    # as unusual should not project it forward.
    flagged = Anomaly.objects.filter(
        organization=org,
        detector=ANOMALY_DETECTOR,
        metric="event_count",
        feature_id__in=ids,
        date__gte=first,
        date__lte=end,
        expected__isnull=False,
    )
    for feature_id, day, expected in flagged.values_list("feature_id", "date", "expected"):
        series[feature_id][(day - first).days] = expected
    columns = []
    for feature_id in ids:
        days = series[feature_id]
        first_seen = next(i for i, v in enumerate(days) if v is not None)
        start_value = cast(float, days[first_seen])
        columns.append([start_value if i < first_seen else (v or 0.0) for i, v in enumerate(days)])
    return {feature_id: keys[feature_id] for feature_id in ids}, [list(row) for row in zip(*columns, strict=True)]


def usage_prediction(
    org: Organization, *, days: int | str, feature: "Feature | int | str | None" = None
) -> dict[str, Any]:
    """Next `days` (7–30) of daily events per feature, with an 80 % interval:
    `{days, features: [{feature_key, points: [{date, value, lower, upper}]}]}`.

    `feature` is a Feature of `org` (another organisation's → 404), or its id, key or name (unknown or
    another organisation's → 400 naming `feature`, as the analytics filters answer).
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
            # As every analytics filter: an unknown (or another organisation's) feature is a 400.
            raise DomainError("feature: Unknown feature.", errors={"feature": ["Unknown feature."]})
    elif feature is not None:
        chosen = cast("Feature", feature)  # it has a pk: the Feature itself, not its id or key
        if chosen.organization_id != org.id:
            raise NotFound("Feature not found.")

    # Forecast from the last complete day: today's partial count would drag the level down.
    last = analytics_queries.last_complete_day(org)
    if last is None:
        return {"days": days, "features": []}
    keys, matrix = _feature_history(org, end=last, feature=chosen)
    if not keys:
        return {"days": days, "features": []}
    result = forecast_matrix(matrix, days)
    dates = [last + timedelta(days=i) for i in range(1, days + 1)]
    features: list[dict[str, Any]] = []
    for column, (feature_id, key) in enumerate(keys.items()):
        points = [
            {
                "date": dates[i].isoformat(),
                "value": round(result["value"][i][column], 2),
                "lower": round(result["lower"][i][column], 2),
                "upper": round(result["upper"][i][column], 2),
            }
            for i in range(days)
        ]
        features.append({"feature_id": feature_id, "feature_key": key, "points": points})
    features.sort(key=lambda f: -sum(p["value"] for p in f["points"]))
    return {"days": days, "features": features}
