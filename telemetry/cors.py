"""CORS on the ingestion routes, the native `/api/v1/events/*` and the SDK-compatible ones:
pages on other origins send events with an ingestion key that lists their origin.

- A preflight (OPTIONS) carries no key, so it is answered for any origin that some active key
  of some organisation lists (one cached set, tenants.services.origin_listed), and refused
  with a JSON 403 otherwise.
- The request itself is where the key's own list is enforced: the key's authentication
  refuses an origin it does not list (403, before anything is stored), and a person's token
  is refused from any other origin (tenants.permissions.IngestAPIView).
- Every answer to a cross-origin request may be read by the page (`Access-Control-Allow-Origin`
  is its origin), refusals included, so a tracker learns why it was refused and stops instead
  of retrying a "network error". Never with credentials: these routes use no cookies.

Wrap each ingestion view with `ingest_cors` in its URLconf; `usage_platform/tests` checks
that every ingestion route is wrapped.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse

from core.cors import cors_allow, is_preflight, preflight_allow, request_origin, vary_origin
from core.exceptions import json_error
from tenants import services as tenant_services

METHODS = ("POST", "OPTIONS")
# What the SDKs set: JSON or text bodies, gzip, and the key in a header (fetch, not sendBeacon).
REQUEST_HEADERS = ("Content-Type", "Content-Encoding", "Authorization", "X-API-Key")
# A throttled or unavailable answer says when to retry; the tracker reads it.
EXPOSED_HEADERS = ("Retry-After",)


def ingest_cors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`view` answering CORS preflights and letting listed pages read its answers."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        origin = request_origin(request)
        if origin is None:
            return view(request, *args, **kwargs)
        if is_preflight(request):
            return preflight(origin)
        return cors_allow(view(request, *args, **kwargs), origin, expose=EXPOSED_HEADERS)

    wrapped.ingest_cors = True  # type: ignore[attr-defined]
    return wrapped


def preflight(origin: str) -> HttpResponse:
    if tenant_services.origin_listed(origin=origin):
        return preflight_allow(HttpResponse(status=204), origin, methods=METHODS, headers=REQUEST_HEADERS)
    message = f"Origin {origin} may not send events here: no ingestion key lists it among its allowed origins."
    return vary_origin(json_error(message, 403, {"origin": [message]}))
