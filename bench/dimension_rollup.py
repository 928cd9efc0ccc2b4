"""Time the dimension rollup step (`analytics.rollup_dimensions.dimensions_day_build`) of one
day alone, per statement: wall time and the PostgreSQL backend's CPU (read from its
/proc/<pid>/stat, so the database must run on this machine). The day's other rollups must
exist (run `manage.py rollup` for it first); the step runs in a transaction rolled back.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_analytics_bench SECRET_KEY=x \\
        .venv/bin/python bench/dimension_rollup.py 2026-11-15 --org bench
"""

import argparse
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from analytics.rollup import day_start  # noqa: E402
from analytics.rollup_dimensions import dimensions_day_build  # noqa: E402
from tenants.models import Organization  # noqa: E402


def backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("day", type=date.fromisoformat)
    parser.add_argument("--org", default="bench", help="organisation slug")
    parser.add_argument("--slowest", type=float, default=0.02, help="list statements slower than this (s)")
    args = parser.parse_args()
    org = Organization.objects.get(slug=args.org)
    ops = connection.ops
    window = [
        ops.adapt_datetimefield_value(day_start(args.day)),
        ops.adapt_datetimefield_value(day_start(args.day + timedelta(days=1))),
    ]
    statements: list[tuple[float, float, str]] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        # As rollup_day sets it for the whole rollup.
        cursor.execute("SET LOCAL work_mem = '256MB'")
        execute = cursor.execute

        def timed(sql: str, params: Any = None) -> Any:
            cpu, wall = backend_cpu_seconds(pid), time.perf_counter()
            result = execute(sql, params)
            statements.append((time.perf_counter() - wall, backend_cpu_seconds(pid) - cpu, " ".join(sql.split())))
            return result

        cursor.execute = timed  # type: ignore[method-assign]
        cpu, wall = backend_cpu_seconds(pid), time.perf_counter()
        dimensions_day_build(cursor, org_id=org.pk, day=args.day, window=window)
        wall, cpu = time.perf_counter() - wall, backend_cpu_seconds(pid) - cpu
        cursor.execute = execute  # type: ignore[method-assign]
        cursor.execute(
            "SELECT COUNT(*) FROM analytics_dailydimensionusage WHERE organization_id = %s AND date = %s",
            [org.pk, args.day],
        )
        rows = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COUNT(*) FROM telemetry_usageevent WHERE organization_id = %s AND timestamp >= %s "
            "AND timestamp < %s",
            [org.pk, *window],
        )
        events = cursor.fetchone()[0]
        transaction.set_rollback(True)
    for seconds, cpu_seconds, sql in statements:
        if seconds >= args.slowest:
            print(f"{seconds:7.3f} s wall {cpu_seconds:6.2f} s CPU  {sql[:100]}")
    with open("/proc/loadavg") as loadavg:
        load = " ".join(loadavg.read().split()[:3])
    print(f"{args.day}: {events:,} events, {rows:,} rows; wall {wall:.2f} s, backend CPU {cpu:.2f} s; load {load}")


if __name__ == "__main__":
    main()
