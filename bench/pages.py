"""Server time of the analytics pages on the benchmark data, cold (dashboard cache empty) and
warm, measured in-process with Django's test client (no HTTP, no network noise).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/up_analytics_bench \\
        .venv/bin/python bench/pages.py [--runs 5] [--email bench-admin@bench.example]

Needs the data of `bench/generate_events.py` (rolled up). Read-only: sessions are signed
cookies, `last_login` is not written, the cache is a private local-memory cache.
Prints a Markdown table for docs/benchmarks.md.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import update_last_login  # noqa: E402
from django.contrib.auth.signals import user_logged_in  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from telemetry.models import EndUser, Feature  # noqa: E402
from tenants.models import User  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--email", default="bench-admin@bench.example")
    args = parser.parse_args()

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
    setup_test_environment()

    user = User.objects.get(email=args.email)
    org = user.organization
    client = Client()
    client.force_login(user)
    feature = Feature.objects.filter(organization=org).order_by("pk").first()
    end_user = EndUser.objects.filter(organization=org).order_by("pk").first()
    keys = Feature.objects.filter(organization=org).order_by("pk").values_list("key", flat=True)[:3]
    steps = "&".join(f"step={key}" for key in keys)
    pages = [
        "/",
        "/?gender=F",
        "/features/",
        f"/features/{feature.pk}/",
        "/users/",
        "/users/?search=user-12",
        f"/users/{end_user.external_id}/",
        "/retention/",
        f"/funnels/?{steps}",
    ]
    for url in pages:  # compile templates, open the connection
        client.get(url)

    print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs per page\n")
    print("| page | cold p50 | cold max | warm p50 | warm max |")
    print("|---|---|---|---|---|")
    for url in pages:
        cold, warm = [], []
        for _ in range(args.runs):
            caches["default"].clear()
            started = time.perf_counter()
            response = client.get(url)
            cold.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            started = time.perf_counter()
            client.get(url)
            warm.append(time.perf_counter() - started)
        print(
            f"| `{url}` | {statistics.median(cold) * 1000:.0f} ms | {max(cold) * 1000:.0f} ms "
            f"| {statistics.median(warm) * 1000:.0f} ms | {max(warm) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
