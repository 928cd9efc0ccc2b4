"""Request bodies sent with `Transfer-Encoding: chunked` (no Content-Length), for Django.

Django reads exactly CONTENT_LENGTH bytes of `wsgi.input`, 0 when the header is absent, so
a chunked body used to arrive empty ("The body is empty"). gunicorn de-chunks the body and
marks `wsgi.input` as ending at the body's end (`wsgi.input_terminated`), so it can be read
to EOF: this WSGI middleware does that before Django sees the request, up to the largest
body any endpoint accepts, and hands Django the bytes with their length. A bigger body is
refused with 413 after reading at most one byte past the limit; a server that cannot
terminate the input gets 411 (Length Required) instead of a read that could block.
"""

import io
from collections.abc import Callable, Iterable
from typing import IO, Any

import orjson
from django.conf import settings

_STEP = 64 * 1024

# PEP 3333's callables, as far as this middleware uses them.
_StartResponse = Callable[..., Any]
_WSGIApp = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


def _refuse(start_response: _StartResponse, status: str, detail: str, field: str = "body") -> list[bytes]:
    body = orjson.dumps({"detail": detail, "errors": {field: [detail]}})
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    """The stream up to EOF, or `limit + 1` bytes when it is longer."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = stream.read(min(_STEP, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


class ChunkedBodies:
    def __init__(self, app: _WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        if environ.get("CONTENT_LENGTH") or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            return self.app(environ, start_response)
        if not environ.get("wsgi.input_terminated"):
            return _refuse(start_response, "411 Length Required", "Send a Content-Length with the body.")
        limit = settings.INGEST_MAX_BODY_BYTES
        try:
            body = _read_at_most(environ["wsgi.input"], limit)
        except Exception:  # a malformed chunk or a client gone: either way the client's doing
            return _refuse(start_response, "400 Bad Request", "The chunked request body could not be read.")
        if len(body) > limit:
            return _refuse(
                start_response,
                "413 Request Entity Too Large",
                f"The body must be at most {limit // (1024 * 1024)} MB.",
            )
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)
