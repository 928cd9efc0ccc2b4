"""The SDK-compatible ingestion routes: thin adapters from a wire format to `service`.

Success is 200 whatever happened inside (posthog-python and Rudder retry anything else):
PostHog gets `{"status": 1, …}`, Segment `{"success": true, …}`, with the native batch's
`accepted`, `duplicates`, `errors` and per-message `results`. A request with no valid
message answers 400 with the same body and `detail`. Errors keep the API's error shape;
on Segment's routes they also carry `code` and `message`, which Rudder's client reads.
"""

from datetime import UTC, datetime

from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from ..bodies import json_body
from ..views_api import IngestView
from . import service
from .auth import SdkKeyAuthentication, posthog_key, segment_key
from .posthog import posthog_batch
from .segment import segment_batch

_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


class _SdkView(IngestView):
    """Decodes the body and finds the key in it (each subclass's `key`) before DRF
    authenticates the request."""

    authentication_classes = [SdkKeyAuthentication]
    dialect = ""

    def initial(self, request, *args, **kwargs):
        django_request = request._request
        django_request.sdk_dialect = self.dialect
        if request.method == "POST":  # any other method answers 405 (OPTIONS its options)
            self.body_size_check(request)
            self.payload = self.decoded(django_request)
            django_request.sdk_key = self.key(django_request, self.payload)
        super().initial(request, *args, **kwargs)

    def decoded(self, django_request):
        return json_body(django_request)

    def answer(self, result, success: dict):
        body = {**success, **service.result_body(result)}
        if result.none_valid:
            return self.refused({"detail": "No valid events in the batch.", **body})
        return Response(body, status=status.HTTP_200_OK)

    def refused(self, body):
        return Response(body, status=status.HTTP_400_BAD_REQUEST)


@extend_schema(exclude=True)
class PostHogCaptureView(_SdkView):
    """`/batch/`, `/capture/`, `/e/`, `/i/v0/e/`: PostHog's SDKs and posthog-js."""

    dialect = "posthog"

    def decoded(self, django_request):
        return json_body(django_request, sdk_forms=True)

    def key(self, django_request, payload):
        return posthog_key(payload)

    def post(self, request):
        batch = posthog_batch(self.payload, now=datetime.now(UTC), sent_at_ms=request.query_params.get("_"))
        return self.answer(service.sdk_batch_ingest(self.org, batch), {"status": 1})


@extend_schema(exclude=True)
class SegmentView(_SdkView):
    """`/v1/batch` and one route per call (`/v1/track`, …): Segment's and RudderStack's SDKs."""

    dialect = "segment"
    call: str | None = None  # None: a batch of messages of any call type

    def key(self, django_request, payload):
        return segment_key(django_request, payload)

    def post(self, request):
        batch = segment_batch(self.payload, now=datetime.now(UTC), call=self.call)
        return self.answer(service.sdk_batch_ingest(self.org, batch), {"success": True})

    def refused(self, body):
        return super().refused(_with_code(body, status.HTTP_400_BAD_REQUEST))

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        if isinstance(response.data, dict):
            response.data = _with_code(response.data, response.status_code)
        return response


def _with_code(body: dict, status_code: int) -> dict:
    """Rudder's client reads `code` and `message` from an error body (and fails without them)."""
    return {**body, "code": _ERROR_CODES.get(status_code, "error"), "message": body.get("detail", "")}


def not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any other path under the ingestion routes: posthog-js's `/flags/`, `/decide/` and
    `/array/<key>/config` (flags and remote config are PostHog's own, not served here), a
    Segment call that does not exist. A JSON 404 the page can read (the route is wrapped in
    `ingest_cors`), with `code` and `message` for Rudder, rather than the site's HTML page."""
    detail = f"No ingestion route at {request.path}: events go to /batch/, /e/ (PostHog) or /v1/batch (Segment)."
    return JsonResponse({"detail": detail, "errors": {}, "code": "not_found", "message": detail}, status=404)
