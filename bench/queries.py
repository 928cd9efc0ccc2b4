"""Dashboard benchmark: rollup time per day, then API and page latency over HTTP.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_analytics_bench \\
        .venv/bin/python bench/queries.py --port 8450 --requests 50

Needs the data of `bench/generate_events.py` (organisation `bench`). Steps:

1. roll up every day holding events (`analytics.rollup.rollup_day`, one organisation), timing
   each day; reports mean / p95 / max per day and the peak (largest) day;
2. starts gunicorn on 127.0.0.1:`--port` against the same database, authenticates with a JWT
   of the bench admin, and times `--requests` sequential requests per endpoint after a warm-up
   (usage-summary, feature-usage, timeseries over 90 days; retention over 12 weeks; a 3-step
   funnel over 30 days), reporting p50 / p95 / max;
3. logs in through the login page (session) and times the dashboard pages that exist.

Prints a Markdown table for docs/benchmarks.md.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Sum  # noqa: E402

from analytics import rollup  # noqa: E402
from analytics.models import DailyOrgUsage  # noqa: E402
from tenants.models import Organization, User  # noqa: E402
from tenants.services import auth_tokens_issue  # noqa: E402

ADMIN_EMAIL = "bench-admin@bench.example"
ADMIN_PASSWORD = "Bench-Password-42"
PAGES = ["/", "/features/", "/users/", "/retention/", "/funnels/", "/insights/"]


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def backend_cpu():
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine): the
    cost of a statement independent of how many other processes share the cores."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rollup_bench(org):
    first, last = rollup.event_days(org)
    timings = []
    cpu = {}
    day = first
    while day <= last:
        c0, t0 = backend_cpu(), time.perf_counter()
        rollup.rollup_day(day, org)
        timings.append((time.perf_counter() - t0, day))
        cpu[day] = backend_cpu() - c0
        day += timedelta(days=1)
    counts = dict(DailyOrgUsage.objects.filter(organization=org).values_list("date", "event_count"))
    total = DailyOrgUsage.objects.filter(organization=org).aggregate(n=Sum("event_count"))["n"]
    peak_day = max(counts, key=counts.get)
    peak_time = next(t for t, d in timings if d == peak_day)
    # Re-time the peak day warm (its pages now in shared buffers), as the nightly job finds it.
    c0, t0 = backend_cpu(), time.perf_counter()
    rollup.rollup_day(peak_day, org)
    peak_warm = time.perf_counter() - t0
    peak_warm_cpu = backend_cpu() - c0
    seconds = [t for t, _ in timings]
    return {
        "days": len(timings),
        "events": total,
        "first": first,
        "last": last,
        "total_s": sum(seconds),
        "mean_ms": ms(statistics.mean(seconds)),
        "p95_ms": ms(pct(seconds, 95)),
        "max_ms": ms(max(seconds)),
        "peak_day": peak_day,
        "peak_events": counts[peak_day],
        "peak_ms": ms(peak_time),
        "peak_warm_ms": ms(peak_warm),
        "peak_cpu_s": f"{cpu[peak_day]:.2f}",
        "peak_warm_cpu_s": f"{peak_warm_cpu:.2f}",
        "cpu_total_s": f"{sum(cpu.values()):.1f}",
        "cpu_mean_ms": ms(statistics.mean(v for d, v in cpu.items() if d != peak_day)),
    }


def server_start(port, workers):
    env = {
        **os.environ,
        "REDIS_URL": "",
        "CACHE_DIR": tempfile.mkdtemp(prefix="bench-cache-"),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/gunicorn"), "usage_platform.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    for _ in range(100):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except requests.RequestException:
            pass
        time.sleep(0.2)
    process.terminate()
    sys.exit("gunicorn did not start")


def row(*cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def timed(session, url, n, warmup=3):
    for _ in range(warmup):
        response = session.get(url, timeout=60)
        if response.status_code != 200:
            return response.status_code, []
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        response = session.get(url, timeout=60)
        samples.append(time.perf_counter() - t0)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return 200, samples


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8450)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--cold", type=int, default=5, help="cache-miss requests per endpoint")
    parser.add_argument("--skip-rollup", action="store_true")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/queries.py measures PostgreSQL (set DATABASE_URL).")
    org = Organization.objects.get(slug="bench")
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[:3]}")

    if not args.skip_rollup:
        r = rollup_bench(org)
        print(
            f"\nRollup: {r['days']} days {r['first']}..{r['last']}, {r['events']:,} events, "
            f"total {r['total_s']:.1f} s; per day mean {r['mean_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms; "
            f"peak day {r['peak_day']} ({r['peak_events']:,} events): "
            f"{r['peak_ms']} ms cold, {r['peak_warm_ms']} ms warm. PostgreSQL backend CPU: total {r['cpu_total_s']} s, "
            f"mean {r['cpu_mean_ms']} ms per ordinary day, peak day {r['peak_cpu_s']} s cold / "
            f"{r['peak_warm_cpu_s']} s warm"
        )

    last = DailyOrgUsage.objects.filter(organization=org).latest("date").date

    def urls(end):
        d90, d30 = end - timedelta(days=89), end - timedelta(days=29)
        return [
            ("usage-summary, 90 days", f"usage-summary?start={d90}&end={end}", 50),
            ("feature-usage, 90 days", f"feature-usage?start={d90}&end={end}", 50),
            ("timeseries events/day, 90 days", f"timeseries?metric=events&start={d90}&end={end}", 50),
            ("timeseries active_users/day, 90 days", f"timeseries?metric=active_users&start={d90}&end={end}", 50),
            ("timeseries events/day age 18-40, 90 days", f"timeseries?age=18-40&start={d90}&end={end}", None),
            ("retention, 12 weeks", f"retention?weeks=12&end={end}", 500),
            ("funnel 3 steps, 30 days", f"funnel?steps=feature-00,feature-01,feature-02&start={d30}&end={end}", 500),
            ("top-users, 30 days", f"top-users?start={d30}&end={end}", None),
            ("user-activity, last 30 days, page 1", f"user-activity?days={30 + (last - end).days}", None),
        ]

    admin = User.objects.get(email=ADMIN_EMAIL)
    server = server_start(args.port, args.workers)
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {auth_tokens_issue(user=admin)['access_token']}"
        base = f"http://127.0.0.1:{args.port}/api/v1/analytics/"
        print(
            "\n| endpoint | cold p50 ms | cold max ms | warm p50 ms | warm p95 ms | warm max ms | target p95 |"
            "\n|---|---|---|---|---|---|---|"
        )
        # Cold: each request a range never asked before (a cache miss, the queries run);
        # warm: the same request repeated (served from the dashboard cache until the next rollup).
        cold_ends = [last - timedelta(days=i) for i in range(1, args.cold + 1)]
        for index, (label, path, target) in enumerate(urls(last)):
            cold = []
            for end in cold_ends:
                t0 = time.perf_counter()
                response = api.get(base + urls(end)[index][1], timeout=120)
                cold.append(time.perf_counter() - t0)
                assert response.status_code == 200, (label, response.status_code, response.text[:300])
            _, samples = timed(api, base + path, args.requests)
            verdict = (
                "" if target is None else f"≤ {target} ms {'ok' if pct(samples, 95) * 1000 <= target else 'MISSED'}"
            )
            print(
                row(
                    label,
                    ms(statistics.median(cold)),
                    ms(max(cold)),
                    ms(pct(samples, 50)),
                    ms(pct(samples, 95)),
                    ms(max(samples)),
                    verdict,
                )
            )

        browser = requests.Session()
        login = browser.get(f"http://127.0.0.1:{args.port}/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        if login.status_code == 200 and token:
            browser.post(
                f"http://127.0.0.1:{args.port}/login/",
                data={"username": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token.group(1)},
                headers={"Referer": f"http://127.0.0.1:{args.port}/login/"},
                timeout=10,
            )
            print("\n| page | p50 ms | p95 ms | max ms | n |\n|---|---|---|---|---|")
            for page in PAGES:
                status, samples = timed(browser, f"http://127.0.0.1:{args.port}{page}", max(10, args.requests // 2))
                if samples:
                    print(row(f"`{page}`", ms(pct(samples, 50)), ms(pct(samples, 95)), ms(max(samples)), len(samples)))
                else:
                    print(f"| `{page}` | HTTP {status} | | | |")
        else:
            print(f"\nno login page (HTTP {login.status_code}): pages not measured")
    finally:
        server.terminate()
        server.wait(timeout=30)
    with open("/proc/loadavg") as f:
        print(f"\nload average after: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()
