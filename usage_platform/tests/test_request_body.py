"""Chunked request bodies (`Transfer-Encoding: chunked`, no Content-Length) are read, within
the 5 MB limit: through the WSGI application in-process, and through a real gunicorn, which
de-chunks the body and marks `wsgi.input` terminated."""

import http.client
import io
from pathlib import Path

import orjson
import pytest
from django.conf import settings
from django.test.client import ClientHandler, RequestFactory

from core.request_body import ChunkedBodies
from core.testing_servers import gunicorn_serving
from telemetry.models import UsageEvent
from telemetry.tests.helpers import BATCH, TRACK, events

ROOT = Path(__file__).resolve().parents[2]


class _TestServer:
    """The Django application as a WSGI callable on the test's database connection (what the
    test client runs, without closing the connection at each request)."""

    def __init__(self):
        self.handler = ClientHandler(enforce_csrf_checks=False)

    def __call__(self, environ, start_response):
        response = self.handler(environ)
        start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
        return [response.content]


class _Endless(io.RawIOBase):
    """A body that never ends; counts what was read from it."""

    def __init__(self):
        self.read_total = 0

    def read(self, size=-1):
        size = 65536 if size is None or size < 0 else size
        self.read_total += size
        return b" " * size


class _Broken(io.RawIOBase):
    def read(self, size=-1):
        raise OSError("Invalid chunk size")


def call(path, stream, *, terminated=True, **headers):
    """POST `stream` as a chunked body: the environ gunicorn builds (no CONTENT_LENGTH)."""
    environ = RequestFactory().generic("POST", path, b"", content_type="application/json", **headers).environ
    environ.pop("CONTENT_LENGTH", None)
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"
    environ["wsgi.input"] = stream
    if terminated:
        environ["wsgi.input_terminated"] = True
    answer = {}

    def start_response(status, headers):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    body = b"".join(ChunkedBodies(_TestServer())(environ, start_response))
    return answer["status"], orjson.loads(body) if body else None


@pytest.fixture
def auth(raw_api_key):
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_api_key}"}


@pytest.mark.django_db
def test_a_chunked_batch_is_read_and_stored(auth, org):
    status, body = call(BATCH, io.BytesIO(orjson.dumps(events(25))), **auth)
    assert status == 200, body
    assert body["accepted"] == 25
    assert UsageEvent.objects.filter(organization=org).count() == 25


@pytest.mark.django_db
def test_a_chunked_track_is_read(auth, org):
    status, body = call(TRACK, io.BytesIO(b'{"feature": "search"}'), **auth)
    assert status == 201, body
    assert UsageEvent.objects.filter(organization=org).count() == 1


@pytest.mark.django_db
def test_a_chunked_body_over_the_limit_is_413_without_reading_it_all(auth, org):
    stream = _Endless()
    status, body = call(BATCH, stream, **auth)
    assert status == 413
    assert set(body) == {"detail", "errors"} and "5 MB" in body["detail"]
    assert stream.read_total <= settings.INGEST_MAX_BODY_BYTES + 1
    assert UsageEvent.objects.filter(organization=org).count() == 0


@pytest.mark.django_db
def test_an_unterminated_chunked_input_is_411(auth):
    status, body = call(BATCH, io.BytesIO(b"[]"), terminated=False, **auth)
    assert status == 411 and set(body) == {"detail", "errors"}


@pytest.mark.django_db
def test_a_chunked_body_that_breaks_off_is_400(auth):
    status, body = call(BATCH, _Broken(), **auth)
    assert status == 400 and set(body) == {"detail", "errors"}


@pytest.mark.django_db
def test_requests_with_a_content_length_pass_untouched(auth, org):
    data = orjson.dumps(events(3))
    environ = RequestFactory().post(BATCH, data, content_type="application/json", **auth).environ
    environ["HTTP_TRANSFER_ENCODING"] = "chunked"  # ignored: Content-Length is there
    environ["wsgi.input"] = io.BytesIO(data)
    statuses = []
    b"".join(ChunkedBodies(_TestServer())(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"]


# --- through a real gunicorn ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    """gunicorn serving usage_platform.wsgi on a free port. No request made here reaches the
    database (its SQLite file stays empty)."""
    with gunicorn_serving(tmp_path_factory.mktemp("gunicorn"), "--workers", "1") as (port, _log):
        yield port


def _post_chunked(port, path, chunks):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=iter(chunks), headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = conn.getresponse()
    return response.status, orjson.loads(response.read())


def test_gunicorn_hands_a_chunked_body_to_the_view(gunicorn):
    # Malformed on purpose: the parse error shows the body was read (an empty body would be
    # "username: This field is required." instead), and nothing touches the database.
    status, body = _post_chunked(gunicorn, "/api/v1/auth/login", [b'{"username": ', b'"a@b.example", "pass'])
    assert status == 400
    assert body["detail"].startswith("JSON parse error"), body


def test_gunicorn_chunked_body_over_the_limit_is_413(gunicorn):
    limit = 5 * 1024 * 1024
    chunk = b" " * (1024 * 1024)
    status, body = _post_chunked(gunicorn, "/api/v1/events/batch", [chunk] * 5 + [b" "])  # limit + 1 byte
    assert (status, set(body)) == (413, {"detail", "errors"})
    assert len(chunk) * 5 + 1 == limit + 1
