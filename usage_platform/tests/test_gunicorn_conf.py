"""usage_platform/gunicorn.conf.py through a real gunicorn: ingestion keys stay out of its
access log (the Basic user Segment's and RudderStack's SDKs send, an `api_key` query value),
and a long URL of the documented limits reaches the platform instead of gunicorn's own 414.
No request made here reaches the database (its SQLite file stays empty)."""

import base64
import http.client
import time
from pathlib import Path

import pytest

from core.testing_servers import gunicorn_serving
from tenants.log_redaction import LogSecretsFilter, log_secrets_redact

ROOT = Path(__file__).resolve().parents[2]
KEY = "upk_Sup3rSecret-ingestion_key42"


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    # The file's settings, but on the loopback only (the bind flag overrides the file).
    with gunicorn_serving(
        tmp_path_factory.mktemp("gunicorn-conf"), "-c", "usage_platform/gunicorn.conf.py", env={"WEB_CONCURRENCY": "1"}
    ) as served:
        yield served


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _access_log(log_path: Path, marker: str) -> str:
    deadline = time.monotonic() + 5  # the line is written after the response
    while marker not in (text := log_path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return text


def test_ingestion_keys_are_not_in_the_access_log(gunicorn):
    port, log_path = gunicorn
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    _get(port, "/v1/track?probe=basic", {"Authorization": f"Basic {basic}"})
    _get(port, f"/health?probe=query&api_key={KEY}&writeKey=w-{KEY[4:]}")
    _get(port, "/health?probe=referer", {"Referer": f"http://127.0.0.1/v1/page?key={KEY}"})
    text = _access_log(log_path, "probe=referer")
    lines = [line for line in text.splitlines() if "probe=" in line]
    assert len(lines) == 3, text
    assert KEY not in text and KEY[4:] not in text, text
    assert "api_key=[redacted]&writeKey=[redacted]" in text, text
    assert " - - [" in lines[0], lines[0]  # the Basic user's place in the line


def test_a_ten_step_funnel_of_long_keys_is_not_refused_by_gunicorn(gunicorn):
    port, log_path = gunicorn
    # Non-Latin names weigh 6 or 9 bytes a character once percent-encoded.
    steps = ",".join(f"{i}-" + "%C3%A9" * 60 for i in range(10))
    user_filter = "user.plan=" + "%E2%82%AC" * 200  # a value of the longest, 200 characters
    path = f"/health?probe=long&steps={steps}&{user_filter}"
    assert 4094 < len(f"GET {path} HTTP/1.1") < 8190
    status, body = _get(port, path, {"Referer": f"http://127.0.0.1:{port}{path}"})
    assert status == 200, body[:300]


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ('"GET /v1/page?api_key=upk_abc HTTP/1.1"', '"GET /v1/page?api_key=[redacted] HTTP/1.1"'),
        ("/x?a=1&Token=t0k&b=2", "/x?a=1&Token=[redacted]&b=2"),
        ("/x?monkey=banana&key=k", "/x?monkey=banana&key=[redacted]"),
        ("/x?note=upk_abc-def", "/x?note=[redacted]"),
        ("/invite/Abc-123_x/?api_key=s", "/invite/[redacted]/?api_key=[redacted]"),
        ("/analytics/funnel?steps=a,b", "/analytics/funnel?steps=a,b"),
    ],
)
def test_log_secrets_redact(line, kept):
    assert log_secrets_redact(line) == kept


def test_the_filter_blanks_gunicorns_user_and_credential_atoms():
    import logging

    atoms = {"u": KEY, "r": f"GET /v1/batch?writeKey={KEY} HTTP/1.1", "{authorization}i": "Basic abc", "s": "200"}
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(u)s %(r)s", (), None)
    record.args = atoms
    assert LogSecretsFilter().filter(record)
    assert record.getMessage() == "[redacted] GET /v1/batch?writeKey=[redacted] HTTP/1.1"
    assert atoms["{authorization}i"] == "[redacted]" and atoms["s"] == "200"
