"""Request bodies of the ingestion routes, native and SDK-compatible, as clients send them → a
JSON value, within the ingestion body limit.

- `Content-Encoding: gzip` (Rudder's default, any client that asks), on every ingestion route;
- PostHog's `?compression=gzip-js` (posthog-js: a gzip body sent as `text/plain`);
- PostHog's form body `data=<base64 of the JSON>` (older posthog-js, `compression=base64`).

The limit (`INGEST_MAX_BODY_BYTES`) holds for the body as sent and for what it decodes to.
Decompression stops one byte past it, so a gzip bomb costs at most that much memory and
answers 413 like any other oversized body.
"""

import base64
import binascii
import zlib
from urllib.parse import parse_qs

import orjson
from django.conf import settings
from rest_framework import status

from core.exceptions import DomainError

_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer, not raw deflate or zlib


def _bad(message: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> DomainError:
    return DomainError(message, errors={"body": [message]}, status_code=status_code)


def body_too_large(limit: int) -> DomainError:
    return _bad(f"The body must be at most {limit // (1024 * 1024)} MB.", status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


def gunzip_bounded(data: bytes, limit: int) -> bytes:
    """The gzip `data` decompressed (every member, as `gzip.decompress` does), refusing with
    413 as soon as the output passes `limit` bytes and with 400 when it is not gzip, corrupt
    or cut short."""
    parts, size = [], 0
    while True:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        try:
            part = inflater.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise _bad(f"The gzip body could not be decompressed ({exc}).")
        size += len(part)
        if size > limit or inflater.unconsumed_tail:
            raise body_too_large(limit)
        parts.append(part)
        if not inflater.eof:
            raise _bad("The gzip body is cut short.")
        # Another member may follow; zero bytes of padding after the last one are ignored.
        data = inflater.unused_data.lstrip(b"\x00")
        if not data:
            return b"".join(parts)


def _content_encoding(request) -> str:
    return request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()


def raw_body(request, *, query_compression: bool = False) -> bytes:
    """The request body decoded from its transfer compression (not yet parsed).

    `query_compression`: honour PostHog's `?compression=` as well as `Content-Encoding`."""
    limit = settings.INGEST_MAX_BODY_BYTES
    data = request.body
    encoding = _content_encoding(request)
    if encoding in ("gzip", "x-gzip"):
        return gunzip_bounded(data, limit)
    if encoding not in ("", "identity"):
        raise _bad(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding.",
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
        )
    if query_compression:
        compression = request.GET.get("compression", "").strip().lower()
        if compression in ("gzip-js", "gzip") or (not compression and data.startswith(_GZIP_MAGIC)):
            return gunzip_bounded(data, limit)
        if compression not in ("", "base64"):
            raise _bad(
                f"compression={compression!r} is not supported; use gzip-js, base64 or none.",
                status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            )
    return data


def _form_data(data: bytes) -> bytes:
    """The JSON inside a form body `data=<base64 or JSON>&compression=…`."""
    try:
        form = parse_qs(data.decode("ascii"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise _bad("A form body must be URL-encoded ASCII.")
    values = form.get("data")
    if not values or not values[0]:
        raise _bad("A form body must carry the events in its `data` field.")
    value = values[0].strip()
    if value[:1] in ("{", "["):
        return value.encode()
    # Form decoding turned an unescaped "+" of the base64 into a space.
    value = value.replace(" ", "+")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad("The form field `data` is neither JSON nor base64-encoded JSON.")


def _is_form(request, data: bytes) -> bool:
    content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    return content_type == "application/x-www-form-urlencoded" or data.startswith(b"data=")


def json_body(request, *, sdk_forms: bool = False):
    """The request's JSON value, decoded as `raw_body` says; 400 when it is not JSON.

    `sdk_forms`: PostHog's routes, which also take `?compression=` and a `data=` form."""
    data = raw_body(request, query_compression=sdk_forms)
    if sdk_forms and _is_form(request, data):
        data = _form_data(data)
        if len(data) > settings.INGEST_MAX_BODY_BYTES:
            raise body_too_large(settings.INGEST_MAX_BODY_BYTES)
    if not data.strip():
        raise _bad("The body is empty; send JSON.")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"Malformed JSON: {exc}")
