"""Dashboard benchmark: rollup time per day, then API and page latency over HTTP.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_analytics_bench \\
        .venv/bin/python bench/generate_events.py --events 10000000 --days 90 --orgs 3 --users 60000
    DATABASE_URL=… .venv/bin/python bench/queries.py --port 8450 --requests 50

Needs the data of `bench/generate_events.py` (organisation `bench`, and with `--orgs 3` two
more whose rows share every table). Steps:

1. roll up every day holding events (`analytics.rollup.rollup_day`, one organisation, per-user
   rollups included), timing each day; reports mean / p95 / max per day and the peak (largest)
   day (`--rollup-peak-only`: only the peak day, cold then warm);
2. starts gunicorn on 127.0.0.1:`--port` against the same database, authenticates with a JWT
   of the bench admin, and times every analytics API, with and without filters: `--cold`
   cache misses (the organisation's rollup generation is bumped before each, as a rollup
   does, so every query runs) and `--requests` warm repeats (served from the dashboard
   cache), reporting p50 / p95 / max against the targets (miss p95 ≤ 100 ms, warm ≤ 20 ms);
3. logs in through the login page (session) and times the pages the same way.

The benchmark process shares the server's cache directory, so it can bump the generation.
Prints Markdown tables for docs/benchmarks.md.
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

# The server's file cache, shared with this process so a bump of the rollup generation here
# is seen by the server (a cache miss on demand).
CACHE_DIR = tempfile.mkdtemp(prefix="bench-cache-")
os.environ["CACHE_DIR"] = CACHE_DIR
os.environ["REDIS_URL"] = ""

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from django.db import connection  # noqa: E402

from analytics import rollup  # noqa: E402
from analytics.models import DailyOrgUsage  # noqa: E402
from telemetry.models import Account, EndUser, Feature, UsageEvent  # noqa: E402
from tenants.models import Organization, User  # noqa: E402
from tenants.services import auth_tokens_issue  # noqa: E402

ADMIN_EMAIL = "bench-admin@bench.example"
ADMIN_PASSWORD = "Bench-Password-42"


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


def rollup_bench(org, *, peak_only=False):
    first, last = rollup.event_days(org)
    if peak_only:
        # The largest day by raw events (the rollups may not exist yet).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (timestamp AT TIME ZONE 'UTC')::date AS d, COUNT(*) FROM telemetry_usageevent "
                "WHERE organization_id = %s GROUP BY 1 ORDER BY 2 DESC LIMIT 1",
                [org.pk],
            )
            first, _ = cursor.fetchone()
        last = first
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
    total = sum(counts[d] for _, d in timings)
    peak_day = max((d for _, d in timings), key=counts.get)
    peak_time = next(t for t, d in timings if d == peak_day)
    # Re-time the peak day warm (its pages now in shared buffers), as the nightly job finds it.
    c0, t0 = backend_cpu(), time.perf_counter()
    rollup.rollup_day(peak_day, org)
    peak_warm = time.perf_counter() - t0
    peak_warm_cpu = backend_cpu() - c0
    seconds = [t for t, _ in timings]
    ordinary = [v for d, v in cpu.items() if d != peak_day] or [cpu[peak_day]]
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
        "cpu_mean_ms": ms(statistics.mean(ordinary)),
    }


def disk_usage():
    """Bytes of each analytics table and the event table: (table, indexes, rows)."""
    tables = [
        "telemetry_usageevent",
        "analytics_dailyorgusage",
        "analytics_dailyfeatureusage",
        "analytics_dailyuserusage",
        "analytics_dailyuserfeatureusage",
        "analytics_dailysegmentusage",
        "analytics_dailyaccountusage",
    ]
    sizes = {}
    with connection.cursor() as cursor:
        for table in tables:
            # Summed over the partitions: a partitioned table (the events) holds no bytes itself,
            # and pg_partition_tree lists nothing for a plain table.
            cursor.execute(
                "SELECT SUM(pg_table_size(relid)), SUM(pg_indexes_size(relid)), "
                f"(SELECT COUNT(*) FROM {table}) FROM (SELECT '{table}'::regclass AS relid "
                f"UNION SELECT relid FROM pg_partition_tree('{table}') WHERE isleaf) AS parts"
            )
            sizes[table] = cursor.fetchone()
    return sizes


def server_start(port, workers):
    env = {
        **os.environ,
        "REDIS_URL": "",
        "CACHE_DIR": CACHE_DIR,
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
    """Warm: the same request repeated, served from the dashboard cache."""
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


def missed(session, url, n, org):
    """Cache misses: the organisation's rollup generation is bumped before each request (as
    every rollup does), so every query of the request runs."""
    samples = []
    for _ in range(n):
        rollup._bump_generation([org.pk])
        time.sleep(0.002)  # the generation is a millisecond stamp: make each bump a new one
        t0 = time.perf_counter()
        response = session.get(url, timeout=120)
        samples.append(time.perf_counter() - t0)
        if response.status_code != 200:
            return response.status_code, samples
    return 200, samples


def verdict(samples, target_ms):
    return f"{'ok' if pct(samples, 95) * 1000 <= target_ms else 'MISSED'}"


def api_paths(org, last):
    """Every analytics API, unfiltered and with filters, over the ranges a dashboard asks."""
    d90, d30 = last - timedelta(days=89), last - timedelta(days=29)
    feature = Feature.objects.filter(organization=org).order_by("key").first()
    user = EndUser.objects.filter(organization=org).order_by("id").first()
    r90, r30 = f"start={d90}&end={last}", f"start={d30}&end={last}"
    return [
        ("usage-summary, 90 days", f"usage-summary?{r90}"),
        ("usage-summary gender=F, 90 days", f"usage-summary?{r90}&gender=F"),
        ("usage-summary age=18-40 + feature, 30 days", f"usage-summary?{r30}&age=18-40&feature={feature.key}"),
        ("feature-usage, 90 days", f"feature-usage?{r90}"),
        ("timeseries events/day, 90 days", f"timeseries?metric=events&{r90}"),
        ("timeseries active_users/week, 90 days", f"timeseries?metric=active_users&interval=week&{r90}"),
        ("timeseries events/day age=18-40, 90 days", f"timeseries?age=18-40&{r90}"),
        ("timeseries active_users/day gender=M, 90 days", f"timeseries?metric=active_users&gender=M&{r90}"),
        (
            "timeseries active_users/week gender=F, 90 days",
            f"timeseries?metric=active_users&interval=week&gender=F&{r90}",
        ),
        ("retention, 12 weeks", f"retention?weeks=12&end={last}"),
        ("top-users, 30 days", f"top-users?{r30}"),
        ("top-users, 90 days", f"top-users?{r90}"),
        ("user-activity, last 30 days, page 1", "user-activity?days=30"),
        ("user-activity, search", "user-activity?days=30&search=user-1"),
        ("users/<id> (one user's own events)", f"users/{user.external_id}"),
        ("funnel 3 steps, 30 days", f"funnel?steps=feature-00,feature-01,feature-02&{r30}"),
        ("funnel 3 steps, 90 days", f"funnel?steps=feature-00,feature-01,feature-02&{r90}"),
        ("usage-summary user.plan=pro, 90 days", f"usage-summary?{r90}&user.plan=pro"),
        ("top-users gender=F, 90 days", f"top-users?{r90}&gender=F"),
        ("retention age=18-40, 12 weeks", f"retention?weeks=12&end={last}&age=18-40"),
        ("breakdown usage-summary by gender, 90 days", f"usage-summary?{r90}&breakdown=gender"),
        ("breakdown usage-summary by feature, 30 days", f"usage-summary?{r30}&breakdown=feature"),
        ("breakdown timeseries events/day by feature, 90 days", f"timeseries?{r90}&breakdown=feature"),
        ("breakdown timeseries events/day by age, 90 days", f"timeseries?{r90}&breakdown=age"),
        (
            "breakdown timeseries active_users/week by gender, 90 days",
            f"timeseries?{r90}&metric=active_users&interval=week&breakdown=gender",
        ),
        ("breakdown timeseries events/day by user.plan, 30 days", f"timeseries?{r30}&breakdown=user.plan"),
        (
            "breakdown timeseries active_users/week by user.plan, 90 days",
            f"timeseries?{r90}&metric=active_users&interval=week&breakdown=user.plan",
        ),
        ("breakdown timeseries events/day by event_type, 30 days", f"timeseries?{r30}&breakdown=event_type"),
        ("breakdown timeseries events/day by event.source, 30 days", f"timeseries?{r30}&breakdown=event.source"),
        ("breakdown feature-usage by age, 90 days", f"feature-usage?{r90}&breakdown=age"),
        ("breakdown feature-usage by gender F by plan, 30 days", f"feature-usage?{r30}&gender=F&breakdown=user.plan"),
        ("breakdown timeseries events/day by event_type, 90 days", f"timeseries?{r90}&breakdown=event_type"),
        (
            "breakdown timeseries users/day by user.plan, 30 days",
            f"timeseries?{r30}&metric=active_users&breakdown=user.plan",
        ),
        (
            "breakdown timeseries events/day by event.source gender=F, 30 days",
            f"timeseries?{r30}&gender=F&breakdown=event.source",
        ),
        ("breakdown usage-summary by event_type, 30 days", f"usage-summary?{r30}&breakdown=event_type"),
        ("breakdown usage-summary by event_type, 90 days", f"usage-summary?{r90}&breakdown=event_type"),
        (
            "breakdown timeseries active_users/week by event_type, 90 days",
            f"timeseries?{r90}&metric=active_users&interval=week&breakdown=event_type",
        ),
        ("breakdown feature-usage by event.source, 30 days", f"feature-usage?{r30}&breakdown=event.source"),
        *account_paths(org, r30, r90),
    ]


def account_paths(org, r30, r90):
    """The account cases: the Accounts list and one account's page (the largest), the
    account filter on the summary, series and top users, and the account breakdown."""
    account = Account.objects.filter(organization=org).order_by("external_id").first()
    if account is None:
        return []
    mine = f"account={account.external_id}"
    return [
        ("accounts list", "accounts"),
        ("accounts/<id> (the largest account)", f"accounts/{account.external_id}"),
        ("usage-summary account=, 90 days", f"usage-summary?{r90}&{mine}"),
        ("usage-summary account= + feature, 30 days", f"usage-summary?{r30}&{mine}&feature=feature-00"),
        ("usage-summary account= gender=F, 30 days", f"usage-summary?{r30}&{mine}&gender=F"),
        ("timeseries events/day account=, 90 days", f"timeseries?{r90}&{mine}"),
        ("timeseries active_users/day account=, 90 days", f"timeseries?{r90}&metric=active_users&{mine}"),
        (
            "timeseries active_users/week account=, 90 days",
            f"timeseries?{r90}&metric=active_users&interval=week&{mine}",
        ),
        ("top-users account=, 90 days", f"top-users?{r90}&{mine}"),
        ("feature-usage account=, 90 days", f"feature-usage?{r90}&{mine}"),
        ("breakdown usage-summary by account, 30 days", f"usage-summary?{r30}&breakdown=account"),
        ("breakdown timeseries events/day by account, 90 days", f"timeseries?{r90}&breakdown=account"),
        (
            "breakdown timeseries active_users/day by account, 90 days",
            f"timeseries?{r90}&metric=active_users&breakdown=account",
        ),
        ("breakdown feature-usage by account, 90 days", f"feature-usage?{r90}&breakdown=account"),
    ]


def page_paths(org, last):
    feature = Feature.objects.filter(organization=org).order_by("key").first()
    account = Account.objects.filter(organization=org).order_by("external_id").first()
    user = EndUser.objects.filter(organization=org).order_by("id").first()
    return [
        "/",
        "/?gender=F",
        "/?breakdown=age",
        "/?breakdown=event_type",
        "/?breakdown=user.plan",
        "/?breakdown=account",
        *([f"/?account={account.external_id}", "/accounts/", f"/accounts/{account.external_id}/"] if account else []),
        "/features/",
        f"/features/{feature.pk}/",
        "/users/",
        f"/users/{user.external_id}/",
        "/retention/",
        "/funnels/?step=feature-00&step=feature-01&step=feature-02",
        "/insights/",
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8450)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=50, help="warm requests per endpoint")
    parser.add_argument("--cold", type=int, default=10, help="cache-miss requests per endpoint")
    parser.add_argument("--skip-rollup", action="store_true")
    parser.add_argument(
        "--only", default="", help="time only the APIs and pages whose label contains this (several: a|b)"
    )
    parser.add_argument("--rollup-peak-only", action="store_true", help="time only the peak day's rollup")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("bench/queries.py measures PostgreSQL (set DATABASE_URL).")
    org = Organization.objects.get(slug="bench")
    print(f"load average before: {load_average()}")
    events = UsageEvent.objects.count()
    print(f"{events:,} events in {Organization.objects.filter(slug__startswith='bench').count()} organisation(s)")

    if not args.skip_rollup:
        r = rollup_bench(org, peak_only=args.rollup_peak_only)
        print(
            f"\nRollup: {r['days']} days {r['first']}..{r['last']}, {r['events']:,} events, "
            f"total {r['total_s']:.1f} s; per day mean {r['mean_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms; "
            f"peak day {r['peak_day']} ({r['peak_events']:,} events): "
            f"{r['peak_ms']} ms cold, {r['peak_warm_ms']} ms warm. PostgreSQL backend CPU: total {r['cpu_total_s']} s, "
            f"mean {r['cpu_mean_ms']} ms per ordinary day, peak day {r['peak_cpu_s']} s cold / "
            f"{r['peak_warm_cpu_s']} s warm (load average now {load_average()})"
        )
    print("\n| table | rows | table MB | indexes MB | bytes per event (table + indexes) |\n|---|---|---|---|---|")
    for table, (size, index_size, rows) in disk_usage().items():
        per_event = (size + index_size) / events if events else 0
        print(row(table, f"{rows:,}", f"{size / 2**20:.1f}", f"{index_size / 2**20:.1f}", f"{per_event:.1f}"))

    last = DailyOrgUsage.objects.filter(organization=org).latest("date").date
    admin = User.objects.get(email=ADMIN_EMAIL)
    server = server_start(args.port, args.workers)
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {auth_tokens_issue(user=admin)['access_token']}"
        base = f"http://127.0.0.1:{args.port}/api/v1/analytics/"
        header = (
            "| {what} | miss p50 ms | miss p95 ms | miss max ms | miss ≤ 100 | warm p50 ms | warm p95 ms | warm ≤ 20 |"
            "\n|---|---|---|---|---|---|---|---|"
        )
        print("\n" + header.format(what="endpoint"))
        for label, path in api_paths(org, last):
            if chosen(label, args.only):
                measure(api, base + path, label, org, args)

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
            print("\n" + header.format(what="page"))
            for page in page_paths(org, last):
                if not chosen(page, args.only):
                    continue
                measure(browser, f"http://127.0.0.1:{args.port}{page}", f"`{page}`", org, args)
        else:
            print(f"\nno login page (HTTP {login.status_code}): pages not measured")
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"\nload average after: {load_average()}")


def chosen(label, only):
    """Whether `--only` (substrings separated by |; empty: everything) picks `label`."""
    return not only or any(part in label for part in only.split("|"))


def measure(session, url, label, org, args):
    status, cold = missed(session, url, args.cold, org)
    if status != 200:
        print(row(label, f"HTTP {status}", "", "", "", "", "", ""))
        return
    status, warm = timed(session, url, args.requests)
    if status != 200:
        print(row(label, f"HTTP {status} (warm)", "", "", "", "", "", ""))
        return
    print(
        row(
            label,
            ms(pct(cold, 50)),
            ms(pct(cold, 95)),
            ms(max(cold)),
            verdict(cold, 100),
            ms(pct(warm, 50)),
            ms(pct(warm, 95)),
            verdict(warm, 20),
        )
    )


def load_average():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
