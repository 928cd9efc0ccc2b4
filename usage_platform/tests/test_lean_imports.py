"""Web and Celery processes boot without the numeric, LLM and data-set libraries: each of
them costs a process tens of MB, and only a few requests and tasks need them
(docs/decisions.md, "Lean processes"). Nor do they load the optional packages Django REST
framework and PyJWT would import only because they are installed (core/lean_imports.py),
not even once a JWT has been signed and checked. Each check runs in a fresh interpreter,
since this test process has long imported them all."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "google.genai", "datasets")
# psycopg through django.contrib.postgres (checked on SQLite: PostgreSQL needs it), requests,
# Markdown and Pygments through DRF's compat module; cryptography's algorithms through PyJWT.
OPTIONAL_EXTRAS = ("psycopg", "requests", "markdown", "pygments", "cryptography.hazmat")

PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
{body}
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def loaded_after(body: str, modules: tuple[str, ...] = HEAVY, **env: str) -> list[str]:
    code = PROBE.format(body=body, heavy=modules)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_web_worker_boots_without_heavy_libraries():
    # What a gunicorn worker does at boot: the WSGI app, then every view through the URLconf.
    body = "import usage_platform.wsgi\nfrom django.urls import get_resolver\nget_resolver().url_patterns"
    assert loaded_after(body) == []


def test_the_insights_charts_and_forecasts_load_no_heavy_libraries(tmp_path):
    # What the Insights page, a feature's page and the prediction API compute in a web worker:
    # the outlier ranking's chart data and a forecast, over a few weeks of rollups.
    body = """
import usage_platform.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
from datetime import date, timedelta
from django.core.management import call_command
call_command("migrate", verbosity=0)
from analytics.models import DailyFeatureUsage
from insights import forecast, services
from telemetry.models import Feature
from tenants.models import Organization
org = Organization.objects.create(name="Lean", slug="lean")
end = date.today() - timedelta(days=1)
for i in range(4):
    feature = Feature.objects.create(organization=org, key=f"f{i}")
    DailyFeatureUsage.objects.bulk_create(
        DailyFeatureUsage(organization=org, feature=feature, date=end - timedelta(days=d), event_count=10 * i + d % 7,
                          daily_active_users=i + 1, sessions=2, total_session_duration=60.0, avg_session_duration=30.0)
        for d in range(60)
    )
charts = services.chart_data(org, start=end - timedelta(days=29), end=end)
assert len(charts["features"]) == 4 and sum(b["count"] for b in charts["histogram"]) == 4, charts
prediction = forecast.usage_prediction(org, days=14)
assert len(prediction["features"]) == 4 and len(prediction["features"][0]["points"]) == 14, prediction
"""
    assert loaded_after(body, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}") == []


def test_celery_processes_import_every_task_module_without_heavy_libraries():
    # Beat and the worker's main process import every tasks module; the libraries load in
    # the pool process that runs a task needing them.
    body = (
        "import django\ndjango.setup()\n"
        "from usage_platform.celery import app\n"
        "app.loader.import_default_modules()\n"
        "assert 'insights.after_rollup' in app.tasks and 'analytics.rollup_today' in app.tasks"
    )
    assert loaded_after(body) == []


WEB_BOOT_AND_A_JWT = (
    "import usage_platform.wsgi\nfrom django.urls import get_resolver\nget_resolver().url_patterns\n"
    # What the first API request with a JWT does: simplejwt signs and checks with PyJWT.
    "from rest_framework_simplejwt.state import token_backend\n"
    "assert token_backend.decode(token_backend.encode({'user_id': 1}))['user_id'] == 1"
)


def test_a_web_worker_on_sqlite_loads_no_optional_extras_even_after_a_jwt(tmp_path):
    sqlite = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert loaded_after(WEB_BOOT_AND_A_JWT, OPTIONAL_EXTRAS, DATABASE_URL=sqlite) == []


def test_celery_processes_load_no_optional_extras(tmp_path):
    body = "import django\ndjango.setup()\nfrom usage_platform.celery import app\napp.loader.import_default_modules()"
    sqlite = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert loaded_after(body, OPTIONAL_EXTRAS, DATABASE_URL=sqlite) == []


def test_the_hidden_extras_still_import_for_whoever_needs_them():
    # Hidden only while DRF and PyJWT import (google-genai needs cryptography, for one).
    body = (
        "import usage_platform\nfrom rest_framework import compat\nimport jwt.algorithms\n"
        "assert compat.requests is None and compat.postgres_fields is None and not jwt.algorithms.has_crypto\n"
        "import requests, django.contrib.postgres.fields, cryptography.hazmat.primitives.hashes"
    )
    assert loaded_after(body, ("requests", "psycopg", "cryptography.hazmat")) == [
        "cryptography.hazmat",
        "psycopg",
        "requests",
    ]


def test_every_django_process_registers_the_tasks_sent_by_name():
    # Services send tasks by name after the commit (core.task_queue); eager mode runs a name
    # in place only where its task is registered, so every app's ready() registers its tasks.
    body = (
        "import django\ndjango.setup()\n"
        "from usage_platform.celery import app\n"
        "names = {'insights.deliver_webhook', 'insights.after_rollup', 'analytics.rollup_today'}\n"
        "assert names <= set(app.tasks), sorted(app.tasks)"
    )
    assert loaded_after(body) == []
