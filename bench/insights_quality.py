"""Insights quality benchmark.

    .venv/bin/python bench/insights_quality.py [--seed 7] [--features 50] [--days 90] [--no-db]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_insights .venv/bin/python bench/insights_quality.py

1. Detector quality: 90 days × 50 features of seasonal usage (weekday profile, slow trend,
   Poisson counts on a lognormal day-to-day wobble); ×3 spikes and ×0.3 drops injected on
   known (feature, day) pairs in the judged range. Reports precision and recall of the
   time-series detector per feature-day, and false alarms per 100 feature-days on the same
   data without injections. Then the same for 50 low-volume features (5–15 events a day):
   ×4 spikes injected, recall (target ≥ 0.8) and false alarms (target ≤ 1 per 100
   feature-days overall, regular and low-volume together).
2. Forecast: the last 14 days are held out; MAPE of the Holt-Winters forecast against the
   seasonal-naive forecast (same weekday last week).
3. Job timing: one organisation × 500 features × 90 days of rollups in the database (a
   throw-away test database: SQLite file under var/ or test_<db> on PostgreSQL), timing
   `anomalies_detect(org, days=90)`.
"""

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

# The low-volume case: features with 5 to 15 events a day (before the weekday profile).
LOW_VOLUME_LEVELS = (5.0, 15.0)
WEEKDAY_PROFILE = np.array([1.0, 1.08, 1.1, 1.05, 0.95, 0.55, 0.5])  # Mon..Sun


def synthetic_usage(
    n_features: int, n_days: int, *, seed: int, start: date, levels: tuple[float, float] = (30, 3000)
) -> pd.DataFrame:
    """Rollup-shaped rows: feature_id, date, event_count, daily_active_users,
    avg_session_duration, sessions, total_session_duration. Each feature's mean daily
    events is log-uniform in `levels` before its weekday profile."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(start, periods=n_days, freq="D")
    weekday = WEEKDAY_PROFILE[days.day_of_week.to_numpy()]
    levels = np.exp(rng.uniform(np.log(levels[0]), np.log(levels[1]), n_features))
    trend = rng.normal(0, 0.003, n_features)
    # Each feature has its own weekday amplitude (some are weekday tools, some are flat).
    amplitude = rng.uniform(0.3, 1.2, n_features)
    t = np.arange(n_days)[:, None]
    season = 1 + (weekday[:, None] - 1) * amplitude[None, :]
    mean = levels[None, :] * season * np.exp(trend[None, :] * t)
    wobble = np.exp(rng.normal(0, 0.08, (n_days, n_features)))
    events = rng.poisson(mean * wobble)
    users_ratio = rng.uniform(0.2, 0.5, n_features)
    users = rng.binomial(events, users_ratio[None, :])
    sessions = np.maximum(users, rng.binomial(events, np.minimum(users_ratio * 1.5, 0.9)[None, :]))
    base_duration = rng.uniform(60, 400, n_features)
    duration = base_duration[None, :] * np.exp(rng.normal(0, 0.06, (n_days, n_features)))
    rows = pd.DataFrame(
        {
            "feature_id": np.tile(np.arange(1, n_features + 1), n_days),
            "date": np.repeat(days.date, n_features),
            "event_count": events.ravel(),
            "daily_active_users": users.ravel(),
            "sessions": sessions.ravel(),
            "avg_session_duration": np.round(duration.ravel(), 2),
        }
    )
    rows["total_session_duration"] = rows["avg_session_duration"] * rows["sessions"]
    return rows


def inject(frame: pd.DataFrame, *, seed: int, first_day: date, per_feature: int = 2, factors=(3.0, 0.3)):
    """The first or the last of `factors` (a coin toss) on event_count, daily_active_users and sessions of
    `per_feature` random days per feature at or after `first_day`. Returns (new frame,
    set of (feature, day))."""
    rng = np.random.default_rng(seed + 1)
    frame = frame.copy()
    days = sorted(d for d in frame["date"].unique() if d >= first_day)
    truth = set()
    for feature_id in sorted(frame["feature_id"].unique()):
        for day in rng.choice(days, size=per_feature, replace=False):
            factor = factors[0] if rng.random() < 0.5 else factors[-1]
            mask = (frame["feature_id"] == feature_id) & (frame["date"] == day)
            for column in ("event_count", "daily_active_users", "sessions"):
                frame.loc[mask, column] = np.round(frame.loc[mask, column] * factor).astype(int)
            truth.add((int(feature_id), day))
    return frame, truth


def detector_quality(args) -> dict:
    """Regular series (30–3000 events a day, ×3 and ×0.3 injected) and low-volume series
    (LOW_VOLUME_LEVELS events a day, ×4 spikes injected): precision and recall per
    feature-day for each, and false alarms per 100 feature-days on the same data without
    injections, for each and overall."""
    from insights import detectors

    start = date(2026, 1, 5)
    end = start + timedelta(days=args.days - 1)
    judged_from = start + timedelta(days=detectors.MIN_HISTORY_DAYS)
    judged_days = (end - judged_from).days + 1

    def judge(clean, dirty, truth):
        found = detectors.timeseries_anomalies(dirty, start=judged_from, end=end)
        flagged = {(f.feature_id, f.date) for f in found}
        true_positive = len(flagged & truth)
        quiet = detectors.timeseries_anomalies(clean, start=judged_from, end=end)
        return {
            "injected": len(truth),
            "flagged": len(flagged),
            "precision": true_positive / len(flagged) if flagged else 1.0,
            "recall": true_positive / len(truth),
            "false_days": len({(f.feature_id, f.date) for f in quiet}),
            "clean_findings": len(quiet),
        }

    clean = synthetic_usage(args.features, args.days, seed=args.seed, start=start)
    dirty, truth = inject(clean, seed=args.seed, first_day=judged_from)
    regular = judge(clean, dirty, truth)
    low_clean = synthetic_usage(
        args.low_features, args.days, seed=args.seed + 300, start=start, levels=LOW_VOLUME_LEVELS
    )
    low_dirty, low_truth = inject(low_clean, seed=args.seed + 300, first_day=judged_from, factors=(4.0,))
    low = judge(low_clean, low_dirty, low_truth)
    regular_feature_days = args.features * judged_days
    low_feature_days = args.low_features * judged_days
    return {
        **regular,
        "judged_days": judged_days,
        "judged_feature_days": regular_feature_days,
        "false_alarms_per_100": 100 * regular["false_days"] / regular_feature_days,
        "low": {**low, "false_alarms_per_100": 100 * low["false_days"] / low_feature_days},
        "overall_false_alarms_per_100": 100
        * (regular["false_days"] + low["false_days"])
        / (regular_feature_days + low_feature_days),
    }


def forecast_quality(args) -> dict:
    from insights import forecast

    start = date(2026, 1, 5)
    frame = synthetic_usage(args.features, args.days, seed=args.seed + 100, start=start)
    matrix = frame.pivot_table(index="date", columns="feature_id", values="event_count").to_numpy(dtype=float)
    train, test = matrix[:-14], matrix[-14:]
    result = {k: np.asarray(v) for k, v in forecast.forecast_matrix(train, 14).items()}
    model = result["value"]
    naive = np.asarray(forecast.seasonal_naive(train, 14))

    def mape(pred):
        return float(np.mean(np.abs(pred - test) / np.maximum(test, 1)) * 100)

    inside = np.mean((test >= result["lower"]) & (test <= result["upper"]))
    model_mape, naive_mape = mape(model), mape(naive)
    return {
        "model_mape": model_mape,
        "naive_mape": naive_mape,
        "improvement_pct": (naive_mape - model_mape) / naive_mape * 100,
        "interval_coverage": float(inside),
    }


def job_timing(args) -> dict:
    """Load 500 × 90 rollup rows into a throw-away database and time the anomaly job."""
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    settings.DEBUG = False
    old = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        from analytics.models import DailyFeatureUsage
        from insights import services
        from insights.models import Anomaly
        from telemetry.models import Feature
        from tenants.models import Organization

        org = Organization.objects.create(name="Bench", slug="bench-insights")
        n_features, n_days = args.job_features, args.days
        end = date.today() - timedelta(days=1)
        start = end - timedelta(days=n_days - 1)
        Feature.objects.bulk_create(
            [Feature(organization=org, key=f"feature_{i}", name=f"Feature {i}") for i in range(n_features)]
        )
        ids = list(Feature.objects.filter(organization=org).order_by("id").values_list("id", flat=True))
        frame = synthetic_usage(n_features, n_days, seed=args.seed + 200, start=start)
        frame, _ = inject(frame, seed=args.seed, first_day=start + timedelta(days=60), per_feature=1)
        id_map = dict(zip(range(1, n_features + 1), ids, strict=True))
        DailyFeatureUsage.objects.bulk_create(
            [
                DailyFeatureUsage(
                    organization=org,
                    feature_id=id_map[r.feature_id],
                    date=r.date,
                    event_count=int(r.event_count),
                    daily_active_users=int(r.daily_active_users),
                    sessions=int(r.sessions),
                    total_session_duration=float(r.total_session_duration),
                    avg_session_duration=float(r.avg_session_duration),
                )
                for r in frame.itertuples()
            ],
            batch_size=5000,
        )
        timings = []
        for _ in range(3):
            Anomaly.objects.filter(organization=org).delete()
            began = time.perf_counter()
            created = services.anomalies_detect(org, end=end, days=n_days)
            timings.append(time.perf_counter() - began)
        began = time.perf_counter()
        services.anomalies_detect(org, end=end, days=n_days)  # re-run: everything is an update
        rerun = time.perf_counter() - began
        return {
            "vendor": connection.vendor,
            "features": n_features,
            "days": n_days,
            "rows": len(frame),
            "anomalies": len(created),
            "first_run_s": min(timings),
            "rerun_s": rerun,
        }
    finally:
        teardown_databases(old, verbosity=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--low-features", type=int, default=50, help="low-volume features (5–15 events a day)")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--job-features", type=int, default=500)
    parser.add_argument("--seeds", type=int, default=10, help="also report the worst case over this many seeds")
    parser.add_argument("--no-db", action="store_true", help="skip the database timing")
    args = parser.parse_args()

    import django

    django.setup()
    q = detector_quality(args)
    low = q["low"]
    print(
        f"detector: {args.features} features × {args.days} days, judged {q['judged_days']} days, "
        f"{q['injected']} injected, {q['flagged']} flagged → precision {q['precision']:.3f}, "
        f"recall {q['recall']:.3f}; clean data: {q['clean_findings']} findings, "
        f"{q['false_alarms_per_100']:.2f} false alarms per 100 feature-days"
    )
    print(
        f"low volume: {args.low_features} features at {LOW_VOLUME_LEVELS[0]:g}–{LOW_VOLUME_LEVELS[1]:g} events a day, "
        f"{low['injected']} ×4 spikes, {low['flagged']} flagged → precision {low['precision']:.3f}, "
        f"recall {low['recall']:.3f}; clean data: {low['false_alarms_per_100']:.2f} false alarms per 100 "
        f"feature-days; overall {q['overall_false_alarms_per_100']:.2f}"
    )
    f = forecast_quality(args)
    print(
        f"forecast (14 held-out days): MAPE {f['model_mape']:.1f} % vs seasonal-naive {f['naive_mape']:.1f} % "
        f"→ {f['improvement_pct']:.0f} % better; 80 % interval coverage {f['interval_coverage'] * 100:.0f} %"
    )
    if args.seeds > 1:
        runs = [
            (
                detector_quality(argparse.Namespace(**{**vars(args), "seed": seed})),
                forecast_quality(argparse.Namespace(**{**vars(args), "seed": seed})),
            )
            for seed in range(1, args.seeds + 1)
        ]
        print(
            f"over seeds 1..{args.seeds}: low-volume recall min {min(q['low']['recall'] for q, _ in runs):.3f} "
            f"(mean {np.mean([q['low']['recall'] for q, _ in runs]):.3f}), low-volume false alarms per 100 "
            f"feature-days max {max(q['low']['false_alarms_per_100'] for q, _ in runs):.2f}, overall max "
            f"{max(q['overall_false_alarms_per_100'] for q, _ in runs):.2f}; "
            f"recall min {min(q['recall'] for q, _ in runs):.3f} "
            f"(mean {np.mean([q['recall'] for q, _ in runs]):.3f}), precision min "
            f"{min(q['precision'] for q, _ in runs):.3f}, false alarms per 100 feature-days max "
            f"{max(q['false_alarms_per_100'] for q, _ in runs):.2f} (mean "
            f"{np.mean([q['false_alarms_per_100'] for q, _ in runs]):.2f}), forecast improvement min "
            f"{min(f['improvement_pct'] for _, f in runs):.0f} % "
            f"(mean {np.mean([f['improvement_pct'] for _, f in runs]):.0f} %)"
        )
    if not args.no_db:
        j = job_timing(args)
        print(
            f"job ({j['vendor']}): {j['features']} features × {j['days']} days ({j['rows']} rollup rows): "
            f"anomalies_detect {j['first_run_s']:.2f} s (best of 3, {j['anomalies']} anomalies), "
            f"re-run {j['rerun_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
