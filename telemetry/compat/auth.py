"""The ingestion key where each SDK puts it.

- PostHog: `api_key` (or `token`) in the body, else `properties.token` of the first event;
- Segment and RudderStack: HTTP Basic with the write key as user name (`writeKey:`), or
  `writeKey` in the body;
- and on every route the native headers (`Authorization: Bearer upk_…`, `X-API-Key`).

The view finds the key in the decoded body before DRF authenticates the request, and leaves
it on the Django request for `SdkKeyAuthentication`.
"""

import base64
import binascii

from rest_framework import exceptions

from tenants.authentication import ApiKeyAuthentication

_NO_KEY = {
    "posthog": "No API key: send your ingestion key (upk_…) as `api_key` in the body or `properties.token`.",
    "segment": "No write key: send your ingestion key (upk_…) as the HTTP Basic user name or `writeKey`.",
}


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def posthog_key(payload) -> str | None:
    """`api_key`/`token` of the body, else `properties.token` (or `api_key`) of its first event."""
    events = payload
    if isinstance(payload, dict):
        key = _text(payload.get("api_key")) or _text(payload.get("token"))
        if key:
            return key
        events = payload.get("batch", [payload])
    if isinstance(events, list) and events and isinstance(events[0], dict):
        first = events[0]
        properties = first.get("properties")
        if isinstance(properties, dict) and _text(properties.get("token")):
            return _text(properties.get("token"))
        return _text(first.get("api_key")) or _text(first.get("token"))
    return None


def basic_user(request) -> str | None:
    """The user name of an `Authorization: Basic` header (Segment sends `writeKey:`)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return _text(decoded.partition(":")[0])


def segment_key(request, payload) -> str | None:
    key = basic_user(request)
    if key is None and isinstance(payload, dict):
        key = _text(payload.get("writeKey"))
    return key


class SdkKeyAuthentication(ApiKeyAuthentication):
    """The key the view found (`request.sdk_key`), else the native headers. A request with no
    key at all is refused here, with where to put it, rather than as an anonymous caller."""

    def authenticate(self, request):
        raw = getattr(request._request, "sdk_key", None)
        if raw is None:
            found = super().authenticate(request)
            if found is None:
                raise exceptions.NotAuthenticated(_NO_KEY[getattr(request._request, "sdk_dialect", "posthog")])
            return found
        # The origin check too: a browser (posthog-js) on an origin the key does not list → 403.
        return self.authenticate_key(request, raw)
