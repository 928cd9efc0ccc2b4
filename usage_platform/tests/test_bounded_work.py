"""Every query a web request runs is bounded: web processes connect with
`statement_timeout` (and only they), and a query it cuts off answers 503 with Retry-After
and the error shape (pages: the 503 page), logged. A value the database refuses answers
400, a service's DomainError on a plain view its own status: never a 500."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from core.exceptions import QUERY_TIMEOUT_RETRY_AFTER

pytestmark = [pytest.mark.django_db, pytest.mark.urls("usage_platform.tests.urls_probe")]
postgres_only = pytest.mark.skipif(not settings.IS_POSTGRES, reason="statement_timeout is PostgreSQL's")

ROOT = Path(__file__).resolve().parents[2]


def _show_statement_timeout(code_before_settings: str, **env) -> str:
    """SHOW statement_timeout from a fresh process that runs `code_before_settings` first."""
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    script = (
        f"{code_before_settings}\n"
        "import django; django.setup()\n"
        "from django.db import connection\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('SHOW statement_timeout'); print(cursor.fetchone()[0])\n"
    )
    child_env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "usage_platform.settings", **env}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@postgres_only
def test_only_web_processes_connect_with_the_statement_timeout():
    web = _show_statement_timeout("import usage_platform.wsgi", DB_STATEMENT_TIMEOUT_MS="1234")
    assert web == "1234ms"
    command = _show_statement_timeout("", DB_STATEMENT_TIMEOUT_MS="1234")  # manage.py, consumers, Celery
    assert command == "0"


@postgres_only
def test_this_test_process_has_no_statement_timeout():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


@pytest.fixture
def short_timeout():
    """A 100 ms statement_timeout on the test's connection (the test's transaction undoes it)."""
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 100")


@postgres_only
@pytest.mark.parametrize("path", ["/api/v1/_probe/slow", "/api/v1/_probe/slow-plain"])
def test_a_query_cut_off_answers_503_with_retry_after(short_timeout, caplog, path):
    response = APIClient().get(path)
    assert response.status_code == 503, response.content
    assert response["Retry-After"] == str(QUERY_TIMEOUT_RETRY_AFTER)
    body = response.json()
    assert set(body) == {"detail", "errors"} and "took too long" in body["detail"]
    assert any("statement_timeout" in record.getMessage() and path in record.getMessage() for record in caplog.records)


@postgres_only
def test_a_page_whose_query_is_cut_off_is_the_503_page(short_timeout):
    response = APIClient().get("/_probe/slow-page")
    assert response.status_code == 503
    assert response["Retry-After"] == str(QUERY_TIMEOUT_RETRY_AFTER)
    content = response.content.decode()
    assert "503" in content and "took too long" in content and "Traceback" not in content


@postgres_only
@pytest.mark.parametrize("path", ["/api/v1/_probe/refused-value", "/_probe/refused-value-page"])
def test_a_value_the_database_refuses_is_400(path):
    response = APIClient().get(path)
    assert response.status_code == 400
    assert "Traceback" not in response.content.decode()
    if path.startswith("/api/"):
        assert set(response.json()) == {"detail", "errors"}


def test_a_domain_error_on_a_plain_view_keeps_its_status():
    api = APIClient().get("/api/v1/_probe/domain-error-plain")
    assert api.status_code == 400
    assert api.json() == {"detail": "start: Enter a valid date.", "errors": {"start": ["Enter a valid date."]}}
    page = APIClient().get("/_probe/domain-error-page")
    assert page.status_code == 400 and "Enter a valid date." in page.content.decode()
