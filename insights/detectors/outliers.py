"""The replaced system's cross-sectional rule, kept for compatibility: per feature the vector
[event_count, avg_session_duration, daily_active_users] over a window, z-scored per column
across features, L2 norm, features at or above the 90th percentile of the norms,
ranked by norm. It always reports about a tenth of the features, so it is a ranking of
unusual features ("Unusual features" on the Insights page), never an alarm.

Plain Python over rollup rows (one mapping per feature and day): the Insights page draws
this ranking in a web process, which should not load numpy and pandas for a few hundred
numbers (docs/benchmarks.md: 0.4 s of imports and ~125 MB on a worker's first chart)."""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from .common import Finding, finite

# The replaced system's column order for the cross-sectional vector.
OUTLIER_COLUMNS = ("event_count", "avg_session_duration", "daily_active_users")
OUTLIER_DETECTOR = "outlier_features"
OUTLIER_PERCENTILE = 90.0

# {feature id: (event_count, avg_session_duration, daily_active_users)}, in feature id order.
Vectors = dict[int, tuple[float, float, float]]


@dataclass(frozen=True)
class Score:
    """A feature's z-score per column (OUTLIER_COLUMNS' order) and their L2 norm."""

    z: tuple[float, ...]
    norm: float


def feature_vectors(rows: Iterable[Mapping[str, Any]]) -> Vectors:
    """Per feature over the rows' window: total events, session-weighted mean session
    duration (plain mean when the rows carry no `sessions`), mean daily active users (over
    the days the feature has rows)."""
    sums: dict[int, list[float]] = {}
    for row in rows:
        weighted = "sessions" in row and "total_session_duration" in row
        weight = float(row["sessions"]) if weighted else 1.0
        acc = sums.setdefault(int(row["feature_id"]), [0.0, 0.0, 0.0, 0.0, 0.0])
        acc[0] += float(row["event_count"])
        acc[1] += float(row["avg_session_duration"]) * weight
        acc[2] += weight
        acc[3] += float(row["daily_active_users"])
        acc[4] += 1
    return {
        feature_id: (events, duration / weight if weight > 0 else 0.0, users / days)
        for feature_id, (events, duration, weight, users, days) in sorted(sums.items())
    }


def outlier_scores(vectors: Vectors) -> dict[int, Score]:
    """z-score each column across features (population σ, as the replaced system's
    `scipy.stats.zscore` did), L2 norm. A column with no spread contributes zeros instead
    of NaN."""
    if not vectors:
        return {}
    n = len(vectors)
    columns = list(zip(*vectors.values(), strict=True))
    means = [sum(column) / n for column in columns]
    spreads = [math.sqrt(sum((v - m) ** 2 for v in column) / n) for column, m in zip(columns, means, strict=True)]
    # A column with (numerically) no spread has no outliers: zeros, not a division by a zero
    # (or rounding-noise) σ.
    flat = [s <= 1e-9 * max(1.0, abs(m)) for s, m in zip(spreads, means, strict=True)]
    scores = {}
    for feature_id, vector in vectors.items():
        z = tuple(
            0.0 if is_flat else finite((v - m) / s)
            for v, m, s, is_flat in zip(vector, means, spreads, flat, strict=True)
        )
        scores[feature_id] = Score(z=z, norm=math.sqrt(sum(x * x for x in z)))
    return scores


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile with linear interpolation between the closest ranks (numpy's
    default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def histogram(values: Sequence[float], bins: int) -> list[tuple[float, float, int]]:
    """(lower, upper, count) per bin of `bins` equal bins over the values' range, the last
    bin closed (numpy.histogram's rule; a single value spans ±0.5)."""
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    width = (high - low) / bins
    edges = [low + width * i for i in range(bins)] + [high]
    counts = [0] * bins
    for value in values:
        index = min(int((value - low) / width), bins - 1)
        # Rounding can put a value on an edge into the bin below or above it.
        while index > 0 and value < edges[index]:
            index -= 1
        while index < bins - 1 and value >= edges[index + 1]:
            index += 1
        counts[index] += 1
    return [(edges[i], edges[i + 1], counts[i]) for i in range(bins)]


def outlier_ids(scores: dict[int, Score], threshold: float) -> list[int]:
    """The rule's features, highest norm first (equal norms by id): a norm above zero and at
    or above `threshold`; none among fewer than 3 features (nothing to compare). The anomaly
    job's findings and the Insights page's chart flag the same ones."""
    if len(scores) < 3:
        return []
    chosen = (fid for fid, s in scores.items() if s.norm >= threshold and s.norm > 0)
    return sorted(chosen, key=lambda fid: (-scores[fid].norm, fid))


def outlier_features(
    rows: Sequence[Mapping[str, Any]], *, end: date, percentile_cut: float = OUTLIER_PERCENTILE
) -> list[Finding]:
    """The replaced system's rule: features whose z-score norm is ≥ the `percentile_cut`-th
    percentile of all norms, highest first (`outlier_ids`)."""
    vectors = feature_vectors(rows)
    if len(vectors) < 3:
        return []
    scores = outlier_scores(vectors)
    threshold = percentile([s.norm for s in scores.values()], percentile_cut)
    chosen = outlier_ids(scores, threshold)
    window = sorted({row["date"] for row in rows})
    findings = []
    for rank, feature_id in enumerate(chosen, start=1):
        score = scores[feature_id]
        findings.append(
            Finding(
                feature_id=feature_id,
                date=end,
                detector=OUTLIER_DETECTOR,
                metric="vector",
                value=score.norm,
                expected=threshold,
                score=score.norm,
                severity="low",
                details={
                    "label": "outlier features",
                    "rank": rank,
                    "threshold": threshold,
                    "percentile": percentile_cut,
                    "window_start": str(window[0]),
                    "window_end": str(window[-1]),
                    "z_scores": dict(zip(OUTLIER_COLUMNS, score.z, strict=True)),
                    "values": {c: finite(v) for c, v in zip(OUTLIER_COLUMNS, vectors[feature_id], strict=True)},
                },
            )
        )
    return findings
