"""Ingestion endpoints: thin adapters around `services.ingest`.

They parse the body themselves with orjson (DRF's parser is several times slower on
5 MB bodies) and answer:
- track: 201 `{id, uuid, timestamp}` (200 if that uuid was already stored; 202 queued);
- batch: 200 `{accepted, duplicates, errors, results}` when at least one item was valid
  (errors list the others; results say what became of each item), 202 when queued, 400
  with the same body (and `detail`) when none was.
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

from .bodies import body_too_large, json_body
from .serializers import BatchIn, BatchOut, BatchRejected, TrackIn, TrackOut
from .services import ingest
from .services.batch_results import batch_results
from .services.ingest.values import timestamp_parse
from .throttling import IngestRateThrottle


class _OrjsonRenderer(JSONRenderer):
    """orjson for the ingestion answers, at a fraction of `json`'s cost. Date-times are left
    to DRF's encoder so they read exactly as in every other answer (milliseconds, `Z`)."""

    _default = encoders.JSONEncoder().default

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if renderer_context:
            # DRF puts the response, the view and its request in here: a reference cycle
            # through the response (IngestView.dispatch says why it must not outlive the
            # answer). Nothing reads it after rendering, which happens once.
            renderer_context.clear()
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
class IngestView(IngestAPIView):
    """Base of every ingestion endpoint, native and SDK-compatible: the ingestion throttle,
    orjson answers in JSON whatever the Accept header, and the body limit, checked on the
    declared length before the body is read and on the body read (chunked bodies)."""

    throttle_classes = [IngestRateThrottle]
    renderer_classes = [_OrjsonRenderer]
    content_negotiation_class = _AlwaysJSON

    def initial(self, request, *args, **kwargs):
        self.body_size_check(request)
        super().initial(request, *args, **kwargs)

    def dispatch(self, request, *args, **kwargs):
        """DRF ties the view, its Request and the response into reference cycles (the
        Request's `parser_context` names both; `response.renderer_context` the view and the
        response), which only the cyclic collector frees. An ingestion request's are big:
        the body, its parsed JSON (2 objects a native event, 5 a Segment message) and the
        per-item results. Left to the collector, every batch request left thousands of
        objects behind, a collection ran every few requests, walked them all, and cost a
        Segment batch a quarter of its CPU. With the cycles cut once the answer is built (and
        by the renderer after rendering), refcounting frees them as soon as it is sent."""
        response = super().dispatch(request, *args, **kwargs)
        self.response = None
        self.__dict__.pop("_parsed_body", None)
        self.__dict__.pop("payload", None)
        if hasattr(self.request, "parser_context"):
            self.request.parser_context = None
        return response

    def body_size_check(self, request):
        limit = settings.INGEST_MAX_BODY_BYTES
        if declared_length(request) > limit:
            raise body_too_large(limit)
        # Read the body before DRF may parse it (staff resolve ?org_id= from it), so the
        # raw bytes stay available to orjson.
        if len(request._request.body) > limit:
            raise body_too_large(limit)

    def parsed_body(self, request):
        """The JSON body, gunzipped first when it says `Content-Encoding: gzip`; parsed once
        (authentication may read it first, for `api_key`)."""
        if getattr(self, "_parsed_body", None) is None:
            self._parsed_body = (json_body(request._request),)
        return self._parsed_body[0]

    def body_api_key(self, request):
        """`api_key` of a JSON object body: how up.js sends its key with sendBeacon, which
        cannot set headers (tenants.authentication asks for it when no header carries one)."""
        try:
            data = self.parsed_body(request)
        except DomainError:
            return None
        key = data.get("api_key") if isinstance(data, dict) else None
        return key if isinstance(key, str) else None

    def body(self, request):
        """The request's events: the body without its credential."""
        data = self.parsed_body(request)
        if isinstance(data, dict):
            data.pop("api_key", None)
        return data

    def sender(self, request):
        user = request.user
        return None if isinstance(user, ApiKeyPrincipal) else user


# Only JSON: the body is parsed with orjson whatever its Content-Type says. 403: an `org_id`
# naming another organisation (the statuses every view answers are added by core.openapi).
_FOREIGN_ORG = OpenApiResponse(ErrorSerializer, description="`org_id` names another organisation.")
_ENCODING = OpenApiResponse(ErrorSerializer, description="A `Content-Encoding` other than gzip.")
_GZIP = (
    "The body may be sent with `Content-Encoding: gzip`; the 5 MB limit holds for the body as sent "
    "and as decompressed (413). An event field not listed is refused (400 naming it): free-form "
    "data goes in `metadata`."
)


class EventTrackView(IngestView):
    @extend_schema(
        request={"application/json": TrackIn},
        responses={201: TrackOut, 202: TrackOut, 200: TrackOut, 400: ERROR, 403: _FOREIGN_ORG, 415: _ENCODING},
        summary="Send one event",
        description=_GZIP,
    )
    def post(self, request):
        body, code = ingest.event_track(self.org, self.body(request), user=self.sender(request))
        return Response(body, status=code)


class EventBatchView(IngestView):
    @extend_schema(
        request={"application/json": BatchIn},
        responses={
            200: BatchOut,
            202: BatchOut,
            400: OpenApiResponse(BatchRejected, description="No valid event: each item's error (or `Error`)."),
            403: _FOREIGN_ORG,
            413: OpenApiResponse(ErrorSerializer, description="Over 1,000 events or 5 MB."),
            415: _ENCODING,
        },
        summary="Send up to 1,000 events",
        description=_GZIP,
    )
    def post(self, request):
        data = self.body(request)
        items = data.get("events") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise DomainError(
                'The body must be a JSON array of events or {"events": [...]}.',
                errors={"events": ["Expected a list of events."]},
            )
        people, accounts, update_errors = _updates(data, len(items))
        count = len(items) + len(people) + len(accounts) + len(update_errors)
        if not count:
            raise DomainError("The batch is empty.", errors={"events": ["Send at least one event."]})
        if count > settings.INGEST_MAX_BATCH:
            raise DomainError(
                f"A batch holds at most {settings.INGEST_MAX_BATCH:,} events (got {count:,}).",
                errors={"events": [f"At most {settings.INGEST_MAX_BATCH} events per batch."]},
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        result = ingest.events_ingest(
            self.org, items, user=self.sender(request), people=people, accounts=accounts, sent_at=_sent_at(data)
        )
        errors = sorted(update_errors + result.errors, key=lambda error: error["index"])
        results = batch_results(count, errors, result.duplicate_indices)
        body = {"accepted": result.accepted, "duplicates": result.duplicates, "errors": errors, "results": results}
        if result.queued:
            body["queued"] = True
            return Response(body, status=status.HTTP_202_ACCEPTED)
        if all(item["status"] == "rejected" for item in results):
            body = {"detail": "No valid events in the batch.", **body}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_200_OK)


def _sent_at(data):
    """The batch's `sent_at` (the client's clock when it sent the request), parsed, or None."""
    value = data.get("sent_at") if isinstance(data, dict) else None
    if value is None:
        return None
    sent_at = timestamp_parse(value)
    if sent_at is None:
        message = "Must be an ISO 8601 date-time or epoch seconds: when the client sent the request, by its clock."
        raise DomainError(f"sent_at: {message}", errors={"sent_at": [message]})
    return sent_at


# Person and account updates beside a batch's events (up.js's identify and group): the
# fields services.ingest.people reads. Their indices follow the events': people first.
_UPDATE_FIELDS = {
    "people": {"user_id", "email", "age", "gender", "properties", "account_id", "timestamp"},
    "accounts": {"account_id", "name", "properties"},
}


def _updates(data, first_index: int) -> tuple[list, list, list]:
    """(people, accounts, item errors) of a batch body's `people` and `accounts` lists, each
    update with its message `index`; an update with a field not listed is that item's error."""
    found: dict[str, list] = {"people": [], "accounts": []}
    errors = []
    index = first_index
    for name, fields in _UPDATE_FIELDS.items():
        updates = data.get(name) if isinstance(data, dict) else None
        if updates is None:
            continue
        if not isinstance(updates, list):
            raise DomainError(f"{name} must be a list.", errors={name: ["Expected a list of updates."]})
        for update in updates:
            unknown = sorted(set(update) - fields) if isinstance(update, dict) else None
            if unknown is None:
                errors.append({"index": index, "field": name, "message": "Expected an object."})
            elif unknown:
                errors.append({"index": index, "field": unknown[0], "message": "Unknown field."})
            else:
                found[name].append({**update, "index": index})
            index += 1
    return found["people"], found["accounts"], errors
