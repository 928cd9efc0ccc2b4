"""Ranked user reads, old plan against new in one process, alternating (so both see the same
load): top users and the user list by most events, each on a cache miss (`.uncached`), with
wall time and PostgreSQL backend CPU (from /proc; the database runs on this machine). The old
plan is the same code with `queries.ranked` switched off (every active user's days summed).

    DATABASE_URL=postgres://…/up_bench… SECRET_KEY=x .venv/bin/python bench/ranked_ab.py --repeat 5
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
os.environ["REDIS_URL"] = ""

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from rollup_profile import backend_cpu, load_average  # noqa: E402

from analytics import queries  # noqa: E402
from analytics.models import DailyOrgUsage  # noqa: E402
from analytics.queries import ranked  # noqa: E402
from telemetry.models import Account  # noqa: E402
from tenants.models import Organization  # noqa: E402


def cases(org, last):
    account = Account.objects.filter(organization=org).order_by("external_id").first()
    r30, r90 = last - timedelta(days=29), last - timedelta(days=89)
    return [
        ("top-users, 30 days", lambda: queries.top_users.uncached(org, start=r30, end=last)),
        ("top-users, 90 days", lambda: queries.top_users.uncached(org, start=r90, end=last)),
        (
            "top-users gender=F, 90 days",
            lambda: queries.top_users.uncached(org, start=r90, end=last, filters={"gender": "F"}),
        ),
        (
            "top-users account=, 90 days",
            lambda: queries.top_users.uncached(org, start=r90, end=last, filters={"account": account}),
        ),
        ("user list 30 days, page 1", lambda: queries.user_activity_page.uncached(org, start=r30, end=last)),
        ("user list 30 days, page 3", lambda: queries.user_activity_page.uncached(org, start=r30, end=last, page=3)),
        (
            "user list search user-1",
            lambda: queries.user_activity_page.uncached(org, start=r30, end=last, search="user-1"),
        ),
    ]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    org = Organization.objects.get(slug="bench")
    last = DailyOrgUsage.objects.filter(organization=org).latest("date").date
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    print(f"load average before: {load_average()}")
    print(
        "| read | old ms (median) | new ms (median) | old backend CPU ms | new backend CPU ms |\n|---|---|---|---|---|"
    )
    for label, call in cases(org, last):
        figures = {"old": ([], []), "new": ([], [])}
        for _ in range(args.repeat):
            for plan in ("old", "new"):
                with mock.patch.object(ranked, "answers", return_value=False) if plan == "old" else mock.MagicMock():
                    c0, t0 = backend_cpu(pid), time.perf_counter()
                    call()
                    figures[plan][0].append((time.perf_counter() - t0) * 1000)
                    figures[plan][1].append((backend_cpu(pid) - c0) * 1000)
        med = {plan: (statistics.median(w), statistics.median(c)) for plan, (w, c) in figures.items()}
        print(f"| {label} | {med['old'][0]:.0f} | {med['new'][0]:.0f} | {med['old'][1]:.0f} | {med['new'][1]:.0f} |")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
