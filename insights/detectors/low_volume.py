"""Small counts judged by their likelihood, not by a spread on the log scale.

At 5–15 events a day the log-scale spread of a series is mostly Poisson noise and rounding
(log1p(5) against log1p(8) is already 0.4), so a ×4 day hides inside a wide spread. Here a
day's count is instead compared with the count distribution its baseline predicts: the
baseline mean λ is known only from the few same-weekday days it was estimated on, so the
prediction is the Gamma-Poisson (negative binomial) one, whose variance is λ·(1 + 1/n) for a
mean of n days, widened further by any extra day-to-day spread the series has shown
(`dispersion`). The tail probability of the day (P(X ≥ x) for a spike, P(X ≤ x) for a drop)
is turned into a score on the time-series scale, so the same threshold and severity cuts
apply.

numpy and `math.lgamma` only: scipy is not a runtime requirement (docs/decisions.md).
"""

import math
import warnings

import numpy as np

# Baselines below this mean (per day) are judged here; above it the log-scale spread is
# dominated by the series' own day-to-day wobble rather than by counting noise, and the
# robust log score of `timeseries` is the better judge.
LOW_VOLUME_MEAN = 20.0
# Below this mean a feature is judged as if it had this many a day: among thousands of
# features used a few times a month, some day with 3 or 5 uses is certain somewhere, and
# tells nobody anything (a Poisson reading of 3 where 0.1 is usual is a 1-in-7,000 day;
# the MovieLens demo had a dozen such "anomalies" per organisation before this floor, and
# 8 where 2 is usual stays noise). On the bench it costs little recall (0.85 → 0.84).
LOW_VOLUME_FLOOR = 2.5
# Tail probability that makes a score of exactly SCORE_THRESHOLD. Bonferroni-like: a
# feature-day judged here may cost the whole target of 1 false alarm per 100 feature-days,
# shared by the count metrics judged each day (events and daily active users), so each test
# gets 0.01 / 2. On bench/insights_quality.py over seeds 1–20: recall on ×4 spikes at 5–15
# events a day 0.87, worst seed 0.80 (0.86 and 0.79 at 0.0035 per test, where the oracle
# that knows each day's true mean reaches 0.88 and 0.82), ≤ 0.82 false alarms per 100
# feature-days overall (the discreteness of small counts spends less than the budget).
FALSE_ALARMS_PER_FEATURE_DAY = 0.01
COUNT_TESTS_PER_DAY = 2
TAIL_ALPHA = FALSE_ALARMS_PER_FEATURE_DAY / COUNT_TESTS_PER_DAY
# Terms summed past the observed count for a tail. Successive terms shrink by a factor that
# tends to q = 1 − 1/(variance ratio) ≤ 0.953 (the widest prediction: dispersion 16 over 3
# baseline weeks), so the terms left out are at most 0.953^64 ≈ 5 % of a tail, and far
# less for Poisson-like series: a tail can only look slightly smaller than it is.
TAIL_TERMS = 64
# Smallest tail probability kept (log of 0 has no score); caps a score at about 490.
MIN_TAIL = 1e-300
# Cells per vectorised step (~4,096 × 64 floats per working array, a few MB).
CHUNK_CELLS = 4096

# The baseline mean: each same-weekday value is first capped at the median plus this many
# Poisson standard deviations, so one past spike in the baseline moves the mean a little
# (a ×4 day in six moves it by about a fifth instead of a half), while the mean still uses
# every day (a median of small counts is often 0 where the mean is 0.8).
BASELINE_CAP_SIGMAS = 2.5

_lgamma_cells = np.frompyfunc(math.lgamma, 1, 1)


def _lgamma(values: np.ndarray) -> np.ndarray:
    """log Γ per cell (numpy has none, and scipy is not a runtime requirement)."""
    return np.asarray(_lgamma_cells(values), dtype=float)


def baseline_mean(lagged: np.ndarray) -> np.ndarray:
    """(weeks × days × series) same-weekday counts, NaN where missing → (days × series)
    capped mean (BASELINE_CAP_SIGMAS), NaN where no week is known."""
    with warnings.catch_warnings():
        # All-NaN slices (no history yet) stay NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(lagged, axis=0)
        cap = median + BASELINE_CAP_SIGMAS * np.sqrt(median + 1.0)
        return np.nanmean(np.minimum(lagged, cap[None, :, :]), axis=0)


def _log_pmf(x: np.ndarray, r: np.ndarray, q: np.ndarray) -> np.ndarray:
    """log P(X = x) of a negative binomial with shape r and per-trial probability q
    (mean r·q/(1−q))."""
    return _lgamma(x + r) - _lgamma(r) - _lgamma(x + 1.0) + r * np.log1p(-q) + x * np.log(q)


def predictive_tails(
    observed: np.ndarray, mean: np.ndarray, *, baseline_days: np.ndarray, dispersion: np.ndarray
) -> np.ndarray:
    """Per cell, the probability of a count at least as far from `mean` as `observed`, in
    its direction: P(X ≥ x) when x > mean, P(X ≤ x) when x ≤ mean (1-D arrays).

    X is negative binomial with the given mean and variance
    mean × dispersion × (1 + 1/baseline_days): Poisson noise, the uncertainty of a mean
    estimated on `baseline_days` days, and any overdispersion the series has shown."""
    if len(observed) > CHUNK_CELLS:
        # (cells × TAIL_TERMS) working arrays: bounded memory however many cells are judged.
        return np.concatenate(
            [
                predictive_tails(
                    observed[i : i + CHUNK_CELLS],
                    mean[i : i + CHUNK_CELLS],
                    baseline_days=baseline_days[i : i + CHUNK_CELLS],
                    dispersion=dispersion[i : i + CHUNK_CELLS],
                )
                for i in range(0, len(observed), CHUNK_CELLS)
            ]
        )
    x = np.floor(np.clip(observed, 0, None)).astype(float)
    mean = np.maximum(mean.astype(float), 1e-3)
    variance_ratio = np.maximum(dispersion, 1.0) * (1.0 + 1.0 / np.maximum(baseline_days, 1.0))
    q = 1.0 - 1.0 / variance_ratio
    r = mean * (1.0 - q) / q
    base = _log_pmf(x, r, q)
    steps = np.arange(TAIL_TERMS, dtype=float)[None, :]
    upper = x[:, None] + steps
    # P(X = k+1) / P(X = k) = (k + r) / (k + 1) · q, summed forward from x.
    up_ratios = (upper[:, :-1] + r[:, None]) / (upper[:, :-1] + 1.0) * q[:, None]
    up_terms = np.concatenate([np.ones((len(x), 1)), np.cumprod(up_ratios, axis=1)], axis=1)
    # P(X = k−1) / P(X = k) = k / ((k − 1 + r) · q), summed backwards from x down to 0.
    lower = x[:, None] - steps
    with np.errstate(divide="ignore", invalid="ignore"):
        down_ratios = lower[:, :-1] / ((lower[:, :-1] - 1.0 + r[:, None]) * q[:, None])
    down_ratios = np.where(lower[:, 1:] >= 0, down_ratios, 0.0)
    down_terms = np.concatenate([np.ones((len(x), 1)), np.cumprod(down_ratios, axis=1)], axis=1)
    spike = x > mean
    sums = np.where(spike, up_terms.sum(axis=1), down_terms.sum(axis=1))
    return np.clip(np.exp(base) * sums, MIN_TAIL, 1.0)


def tail_score(tail: np.ndarray, *, spike: np.ndarray, threshold: float) -> np.ndarray:
    """A tail probability on the time-series score scale: `threshold` at TAIL_ALPHA, and
    proportional to −log(tail) (so the severity cuts 6 and 9 mean TAIL_ALPHA^1.5 and
    TAIL_ALPHA^2.25); positive for spikes, negative for drops."""
    magnitude = threshold * np.log(tail) / math.log(TAIL_ALPHA)
    return np.where(spike, magnitude, -magnitude)
