"""Profile one day's rollup statement by statement: wall time and PostgreSQL backend CPU of
each SQL statement `analytics.rollup.rollup_day` runs, for the peak day (the largest by raw
events) of organisation `bench` and, for comparison, an ordinary day.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_rollup_peak_bench \\
        .venv/bin/python bench/generate_events.py --events 330000 --days 30 --peak-events 1000000 --orgs 1
    DATABASE_URL=… .venv/bin/python bench/rollup_profile.py --repeat 2

Each day is rolled `--repeat` times (the first cold, the rest warm: the rows exist and the
day's pages are cached); every run prints its statements, slowest first, then the totals.
With `--first`, each day's per-user rows are deleted (and the tables vacuumed) before its
first run, which is then a first roll rather than a re-roll (the two write differently).
Backend CPU is read from /proc (the database runs on this machine), so it does not depend
on how many other processes share the cores. The statements and CPU are the rollup's own
connection's: the event dimensions run meanwhile on a second one (`analytics.side_lane`),
whose time shows only in the wall time; with ROLLUP_SIDE_CONNECTION=false every statement
runs on the one profiled.
"""

import argparse
import math
import os
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

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from analytics import active_days, recency, rollup  # noqa: E402
from tenants.models import Organization  # noqa: E402


def backend_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average():
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def profile(day, org, pid, top=12):
    statements = []

    def timed(execute, sql, params, many, context):
        c0, t0 = backend_cpu(pid), time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - t0, backend_cpu(pid) - c0, " ".join(sql.split())[:110]))

    c0, t0 = backend_cpu(pid), time.perf_counter()
    with connection.execute_wrapper(timed):
        rollup.rollup_day(day, org)
    wall, cpu = time.perf_counter() - t0, backend_cpu(pid) - c0
    for s_wall, s_cpu, sql in sorted(statements, reverse=True)[:top]:
        print(f"  {s_wall * 1000:8.1f} ms wall {s_cpu:6.2f} s CPU  {sql}")
    in_statements = sum(s_cpu for _wall, s_cpu, _sql in statements)
    print(f"  total {wall:.2f} s wall, {cpu:.2f} s backend CPU, {len(statements)} statements")
    # The rest is mostly the commit: deferred constraint checks, WAL flush.
    print(f"  backend CPU in statements {in_statements:.2f} s, outside them (commit) {cpu - in_statements:.2f} s")


def forget(day, org):
    """Delete `day`'s per-user rows, as if it had never been rolled up, and vacuum the
    tables so the first roll finds their free space as a fresh day would."""
    week = active_days.WEEK_FIELDS[active_days.week_of(day)]
    with connection.cursor() as cursor:
        # Nor its events in its week's totals per user.
        cursor.execute(
            f"UPDATE analytics_useractivedays a SET {week} = a.{week} - d.event_count "
            "FROM analytics_dailyuserusage d WHERE d.organization_id = %s AND d.date = %s "
            "AND a.organization_id = d.organization_id AND a.end_user_id = d.end_user_id AND a.block_start = %s",
            [org.pk, day, active_days.block_of(day)],
        )
        for table in ("analytics_dailyuserfeatureusage", "analytics_dailyuserusage"):
            cursor.execute(f"DELETE FROM {table} WHERE organization_id = %s AND date = %s", [org.pk, day])
        # A day never rolled has no active-day bit set either, per user, feature or event type, no
        # row that only that bit kept, and no copy of the bit in the per-feature rows of the
        # two blocks after it.
        bit = active_days.day_bit(day)
        block = active_days.block_of(day)
        for table in (
            "analytics_useractivedays",
            "analytics_userfeatureactivedays",
            "analytics_usereventtypeactivedays",
            "analytics_accountfeatureactivedays",
        ):
            cursor.execute(
                f"UPDATE {table} SET active_days = active_days & ~CAST(%s AS BIGINT) "
                "WHERE organization_id = %s AND block_start = %s AND (active_days & CAST(%s AS BIGINT)) <> 0",
                [bit, org.pk, block, bit],
            )
            cursor.execute(
                f"DELETE FROM {table} WHERE organization_id = %s AND block_start = %s AND active_days = 0",
                [org.pk, block],
            )
        for k in (1, 2):
            column = f"earlier_days_{k}"
            cursor.execute(
                f"UPDATE analytics_userfeatureactivedays SET {column} = {column} & ~CAST(%s AS BIGINT) "
                f"WHERE organization_id = %s AND block_start = %s AND ({column} & CAST(%s AS BIGINT)) <> 0",
                [bit, org.pk, block + timedelta(days=active_days.BLOCK_DAYS * k), bit],
            )
    with connection.cursor() as cursor:
        for table in (
            "analytics_dailyuserfeatureusage",
            "analytics_dailyuserusage",
            "analytics_useractivedays",
            "analytics_userfeatureactivedays",
            "analytics_usereventtypeactivedays",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--first", action="store_true", help="make each day's first run a first roll")
    parser.add_argument("--top", type=int, default=12, help="statements printed per run, slowest first")
    parser.add_argument("--peak-only", action="store_true", help="skip the ordinary day")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/rollup_profile.py measures PostgreSQL (set DATABASE_URL).")
    org = Organization.objects.get(slug="bench")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute(
            "SELECT (timestamp AT TIME ZONE 'UTC')::date, COUNT(*) FROM telemetry_usageevent "
            "WHERE organization_id = %s GROUP BY 1 ORDER BY 2 DESC",
            [org.pk],
        )
        days = cursor.fetchall()
    (peak, peak_events), (ordinary, ordinary_events) = days[0], days[len(days) // 2]
    print(f"load average before: {load_average()}")
    side = "a second connection" if settings.ROLLUP_SIDE_CONNECTION else "the same connection (not beside)"
    print(f"event dimensions on {side}")
    chosen = [(peak, peak_events)] if args.peak_only else [(peak, peak_events), (ordinary, ordinary_events)]
    try:
        for day, events in chosen:
            if args.first:
                forget(day, org)
            for run in range(args.repeat):
                print(f"\n{day} ({events:,} events), run {run + 1} ({'cold' if run == 0 else 'warm'}):")
                profile(day, org, pid, args.top)
        print(f"\nload average after: {load_average()}")
    finally:
        # As a rollup run ends, also when a profile fails or is interrupted: the re-rolls
        # marked the later days' recency rows stale, and until they are rebuilt the reads
        # over them count from the bitmasks (slower), which a bench/queries.py run right
        # after would measure.
        started = time.perf_counter()
        rebuilt = recency.recency_stale_rebuild(org.pk, budget_seconds=math.inf)
        print(f"recency rows of {rebuilt} stale day(s) rebuilt in {time.perf_counter() - started:.1f} s (not profiled)")


if __name__ == "__main__":
    main()
