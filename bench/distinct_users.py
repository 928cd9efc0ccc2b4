"""Distinct-user reads in process, without HTTP or cache: wall time and the PostgreSQL
backend's CPU per call (the CPU is what a busy machine cannot inflate much).

    DATABASE_URL=postgres://… .venv/bin/python bench/distinct_users.py --repeat 7

Needs the data of `bench/generate_events.py` (organisation `bench`), rolled up. Runs the
same calls on whatever code checkout it is started from, so the same command measures a
branch and its base on one database. Prints a Markdown table: median and best of `--repeat`.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
os.environ["REDIS_URL"] = ""

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from analytics import queries  # noqa: E402
from analytics.models import DailyOrgUsage  # noqa: E402
from analytics.queries.breakdowns import breakdown_series, breakdown_totals  # noqa: E402
from tenants.models import Organization  # noqa: E402


def backend_cpu():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def calls(org, last):
    d90, d30 = last - timedelta(days=89), last - timedelta(days=29)
    weekly = {"metric": "active_users", "interval": "week", "start": d90, "end": last}
    users90 = {"start": d90, "end": last, "metric": "active_users"}
    plan = {"user_properties": {"plan": "pro"}}
    summary, series, retention = queries.usage_summary.uncached, queries.timeseries.uncached, queries.retention.uncached
    return [
        ("usage-summary, 90 days", lambda: summary(org, d90, last)),
        ("usage-summary gender=F, 90 days", lambda: summary(org, d90, last, {"gender": "F"})),
        ("usage-summary user.plan=pro, 30 days", lambda: summary(org, d30, last, plan)),
        ("timeseries active_users/week, 90 days", lambda: series(org, **weekly)),
        ("timeseries active_users/week gender=F, 90 days", lambda: series(org, gender="F", **weekly)),
        ("retention, 12 weeks", lambda: retention(org, weeks=12, end=last)),
        ("retention age=18-40, 12 weeks", lambda: retention(org, weeks=12, end=last, filters={"age": "18-40"})),
        ("active users by gender, 90 days", lambda: breakdown_totals.uncached(org, dimension="gender", **users90)),
        (
            "weekly active users by gender, 90 days",
            lambda: breakdown_series.uncached(org, dimension="gender", **weekly),
        ),
        (
            "weekly active users by user.plan, 90 days",
            lambda: breakdown_series.uncached(org, dimension="user.plan", **weekly),
        ),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--org", default="bench")
    args = parser.parse_args()
    org = Organization.objects.get(slug=args.org)
    last = DailyOrgUsage.objects.filter(organization=org).latest("date").date
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| read | wall median ms | wall best ms | backend CPU median ms |")
    print("|---|---|---|---|")
    for label, call in calls(org, last):
        call()  # warm the buffers and the connection
        walls, cpus = [], []
        for _ in range(args.repeat):
            c0, t0 = backend_cpu(), time.perf_counter()
            call()
            walls.append(time.perf_counter() - t0)
            cpus.append(backend_cpu() - c0)
        print(
            f"| {label} | {statistics.median(walls) * 1000:.1f} | {min(walls) * 1000:.1f} "
            f"| {statistics.median(cpus) * 1000:.0f} |"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
