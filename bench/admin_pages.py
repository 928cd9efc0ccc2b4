"""Django admin change lists on a large database: every registered model's list, then the
raw events searched by an end user's id, a uuid and a feature key, each timed in process
(Django's test client, a platform superuser) with the query that took longest.

    DATABASE_URL=postgres://…/up_bench10m SECRET_KEY=… .venv/bin/python bench/admin_pages.py [--only usageevent]

Needs the data of `bench/generate_events.py` (and its rollups for the rollup tables). Creates
the superuser `bench-staff@bench.example` when the database has none. Prints a Markdown table.
"""

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

import django  # noqa: E402

django.setup()

from django.contrib import admin  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from telemetry.models import EndUser, Feature, UsageEvent  # noqa: E402
from tenants.models import User  # noqa: E402


def _timed(client: Client, url: str) -> tuple[float, int, float]:
    """(ms, queries, ms of the slowest query) of one GET."""
    with CaptureQueriesContext(connection) as ctx:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code == 200, (url, response.status_code)
    slowest = max((float(q["time"]) for q in ctx.captured_queries), default=0.0) * 1000
    return elapsed, len(ctx.captured_queries), slowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="only the URLs containing this text")
    args = parser.parse_args()
    staff = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser(
        email="bench-staff@bench.example", password="Bench-Password-42"
    )
    client = Client(SERVER_NAME="localhost")
    client.force_login(staff)
    urls = [f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry]
    events = "/admin/telemetry/usageevent/"
    event = UsageEvent.objects.order_by().first()
    if event is not None:
        user = EndUser.objects.filter(pk=event.end_user_id).values_list("external_id", flat=True).first()
        feature = Feature.objects.filter(pk=event.feature_id).values_list("key", flat=True).first()
        urls += [f"{events}?q={user}", f"{events}?q={event.uuid}", f"{events}?q={feature}"]
    print("| change list | ms | queries | slowest query, ms |\n|---|---|---|---|")
    for url in urls:
        if args.only not in url:
            continue
        elapsed, queries, slowest = _timed(client, url)
        print(f"| `{url}` | {elapsed:,.0f} | {queries} | {slowest:,.0f} |")


if __name__ == "__main__":
    main()
