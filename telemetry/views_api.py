"""Ingestion endpoints: thin adapters around `services.ingest`.

They parse the body themselves with orjson (DRF's parser is several times slower on
5 MB bodies) and answer:
- track: 201 `{id, uuid, timestamp}` (200 if that uuid was already stored; 202 queued);
- batch: 200 `{accepted, duplicates, errors}` when at least one item was valid (errors list
  the others), 202 when queued, 400 with the same body (and `detail`) when none was.
"""

import orjson
from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils import encoders

from core.api import declared_length
from core.exceptions import DomainError
from core.openapi import ERROR, ErrorSerializer
from tenants.authentication import ApiKeyPrincipal
from tenants.permissions import IngestAPIView

from .serializers import BatchIn, BatchOut, BatchRejected, EventIn, TrackOut
from .services import ingest
from .throttling import IngestRateThrottle


def _too_large(message):
    return DomainError(message, errors={"body": [message]}, status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)


class _OrjsonRenderer(JSONRenderer):
    """orjson for the ingestion answers, at a fraction of `json`'s cost. Date-times are left
    to DRF's encoder so they read exactly as in every other answer (milliseconds, `Z`)."""

    _default = encoders.JSONEncoder().default

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return orjson.dumps(data, default=self._default, option=orjson.OPT_PASSTHROUGH_DATETIME)


class _AlwaysJSON(BaseContentNegotiation):
    """SDKs get JSON whatever they send in Accept; skipping negotiation is cheaper too."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@extend_schema(tags=["ingestion"])
class _IngestView(IngestAPIView):
    throttle_classes = [IngestRateThrottle]
    renderer_classes = [_OrjsonRenderer]
    content_negotiation_class = _AlwaysJSON

    def initial(self, request, *args, **kwargs):
        limit = settings.INGEST_MAX_BODY_BYTES
        if declared_length(request) > limit:
            raise _too_large(f"The body must be at most {limit // (1024 * 1024)} MB.")
        # Read the body before DRF may parse it (staff resolve ?org_id= from it), so the
        # raw bytes stay available to orjson.
        if len(request._request.body) > limit:
            raise _too_large(f"The body must be at most {limit // (1024 * 1024)} MB.")
        super().initial(request, *args, **kwargs)

    def body(self, request):
        raw = request._request.body
        if not raw:
            raise DomainError("The body is empty; send JSON.", errors={"body": ["Expected JSON."]})
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DomainError(f"Malformed JSON: {exc}", errors={"body": [f"Malformed JSON: {exc}"]})

    def sender(self, request):
        user = request.user
        return None if isinstance(user, ApiKeyPrincipal) else user


# Only JSON: the body is parsed with orjson whatever its Content-Type says. 403: an `org_id`
# naming another organisation (the statuses every view answers are added by core.openapi).
_FOREIGN_ORG = OpenApiResponse(ErrorSerializer, description="`org_id` names another organisation.")


class EventTrackView(_IngestView):
    @extend_schema(
        request={"application/json": EventIn},
        responses={201: TrackOut, 202: TrackOut, 200: TrackOut, 400: ERROR, 403: _FOREIGN_ORG},
        summary="Send one event",
    )
    def post(self, request):
        body, code = ingest.event_track(self.org, self.body(request), user=self.sender(request))
        return Response(body, status=code)


class EventBatchView(_IngestView):
    @extend_schema(
        request={"application/json": BatchIn},
        responses={
            200: BatchOut,
            202: BatchOut,
            400: OpenApiResponse(BatchRejected, description="No valid event: each item's error (or `Error`)."),
            403: _FOREIGN_ORG,
            413: OpenApiResponse(ErrorSerializer, description="Over 1,000 events or 5 MB."),
        },
        summary="Send up to 1,000 events",
    )
    def post(self, request):
        data = self.body(request)
        items = data.get("events") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise DomainError(
                'The body must be a JSON array of events or {"events": [...]}.',
                errors={"events": ["Expected a list of events."]},
            )
        if not items:
            raise DomainError("The batch is empty.", errors={"events": ["Send at least one event."]})
        if len(items) > settings.INGEST_MAX_BATCH:
            raise DomainError(
                f"A batch holds at most {settings.INGEST_MAX_BATCH:,} events (got {len(items):,}).",
                errors={"events": [f"At most {settings.INGEST_MAX_BATCH} events per batch."]},
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        result = ingest.events_ingest(self.org, items, user=self.sender(request))
        body = {"accepted": result.accepted, "duplicates": result.duplicates, "errors": result.errors}
        if result.queued:
            body["queued"] = True
            return Response(body, status=status.HTTP_202_ACCEPTED)
        if result.valid == 0 and result.duplicates == 0:
            body = {"detail": "No valid events in the batch.", **body}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_200_OK)
