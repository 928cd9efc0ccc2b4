"""Web and Celery processes boot without the numeric, LLM and data-set libraries: each of
them costs a process tens of MB, and only a few requests and tasks need them
(docs/decisions.md, "Lean processes"). Each check runs in a fresh interpreter, since this
test process has long imported them all."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "google.genai", "datasets")

PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "usage_platform.settings")
{body}
print(json.dumps(sorted(name for name in {heavy!r} if name in sys.modules)))
"""


def loaded_after(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_web_worker_boots_without_heavy_libraries():
    # What a gunicorn worker does at boot: the WSGI app, then every view through the URLconf.
    body = "import usage_platform.wsgi\nfrom django.urls import get_resolver\nget_resolver().url_patterns"
    assert loaded_after(body) == []


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
