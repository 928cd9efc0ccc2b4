"""Cache misses in process: the analytics APIs and pages of `bench/queries.py`, each asked
through Django's test client right after a bump of the organisation's rollup generation (as
every rollup does), with no HTTP server between. Prints the median and p90 of `--repeat`
misses per read and, with `--statements`, the slowest SQL statements of the last one. It
tells the database's share of a miss from the rest and compares two variants in one stretch
(run it on each, alternating), where the machine's speed drifts too much between two
`bench/queries.py` runs.

    DATABASE_URL=postgres://…/up_bench10m SECRET_KEY=x .venv/bin/python bench/misses.py \\
        --only "top-users|user-activity" --repeat 10 --statements 4
    … bench/misses.py --pages --only "/users/"

Needs the data of `bench/generate_events.py` rolled up (organisation `bench`).
"""

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from queries import ADMIN_EMAIL, api_paths, chosen, page_paths  # noqa: E402  (sets up Django)

from analytics import rollup  # noqa: E402
from analytics.models import DailyOrgUsage  # noqa: E402
from tenants.models import Organization, User  # noqa: E402
from tenants.services import auth_tokens_issue  # noqa: E402


def miss(client, org, url):
    """One request after a generation bump: (seconds, [(seconds, sql)] of its statements)."""
    timed = []

    def wrapper(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timed.append((time.perf_counter() - t0, sql))

    rollup._bump_generation([org.pk])
    time.sleep(0.002)  # the generation is a millisecond stamp: make each bump a new one
    with connection.execute_wrapper(wrapper):
        t0 = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - t0
    if response.status_code != 200:
        sys.exit(f"{url}: HTTP {response.status_code}")
    return seconds, timed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="the reads whose label contains this (several: a|b)")
    parser.add_argument("--pages", action="store_true", help="the pages instead of the APIs")
    parser.add_argument("--repeat", type=int, default=10, help="timed misses per read (after one untimed)")
    parser.add_argument("--statements", type=int, default=0, help="print the N slowest statements of a miss")
    args = parser.parse_args()
    org = Organization.objects.get(slug="bench")
    last = DailyOrgUsage.objects.filter(organization=org).latest("date").date
    admin = User.objects.get(email=ADMIN_EMAIL)
    if args.pages:
        client = Client()
        client.force_login(admin)
        reads = [(path, path) for path in page_paths(org, last)]
    else:
        client = Client(HTTP_AUTHORIZATION=f"Bearer {auth_tokens_issue(user=admin)['access_token']}")
        reads = [(label, "/api/v1/analytics/" + path) for label, path in api_paths(org, last)]
    print("| read | miss p50 ms | miss p90 ms | SQL ms (last) | statements |\n|---|---|---|---|---|")
    for label, url in reads:
        if not chosen(label, args.only):
            continue
        miss(client, org, url)  # the first of a read pays its imports and plans
        samples, timed = [], []
        for _ in range(args.repeat):
            seconds, timed = miss(client, org, url)
            samples.append(seconds)
        samples.sort()
        p90 = samples[math.ceil(0.9 * len(samples)) - 1]
        sql = sum(s for s, _ in timed)
        p50 = statistics.median(samples)
        print(f"| {label} | {p50 * 1000:.0f} | {p90 * 1000:.0f} | {sql * 1000:.0f} | {len(timed)} |")
        for seconds, statement in sorted(timed, key=lambda t: t[0], reverse=True)[: args.statements]:
            print(f"|   {seconds * 1000:.1f} ms | `{' '.join(statement.split())[:160]}` | | | |")


if __name__ == "__main__":
    main()
