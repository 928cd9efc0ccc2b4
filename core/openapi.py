"""The OpenAPI schema documents every status an operation can answer, derived from the view.

Each error status comes from a part of the view that produces it, so a new view is documented
by what it is rather than by a list someone has to remember to keep up to date:

- 400: the operation takes a body or a `?format=` (one of a set), or is tenant-scoped (staff
  must pick `?org_id=`);
- 401: the view authenticates (a bad or expired credential is refused even where none is needed);
- 403: a permission can refuse an authenticated caller (a role, staff only);
- 404: a path parameter names an object, or the view is tenant-scoped (staff's `?org_id=`);
- 411, 413: it takes a body (411: sent chunked to a server that cannot de-chunk it, see
  request_body.py; gunicorn can); 415: it takes a body through DRF's content negotiation;
- 429: a throttle applies; 503 (with `Retry-After`): it reads or writes storage.

Every error body is the one `Error` component (`{detail, errors}`), always JSON (CSV views
render their errors as JSON too). A view documents a status itself only where its body
differs (the batch endpoint's per-item errors) or where it answers it for its own reasons.
"""

from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny, IsAuthenticated

from .negotiation import render_formats

JSON = "application/json"

_View = TypeVar("_View")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in one sentence.")
    errors = serializers.DictField(  # type: ignore[assignment]  # a field named like Serializer.errors
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field (`body` for the request body as a whole); empty when no field is at fault.",
    )

    class Meta:
        ref_name = "Error"


ERROR = OpenApiResponse(ErrorSerializer, description='`{"detail": "...", "errors": {field: [messages]}}`')

DESCRIPTIONS = {
    "400": "Bad input: `errors` names each field at fault and why.",
    "401": "No credentials, or invalid, expired or revoked ones.",
    "403": "Your role or kind of credential does not allow this.",
    "404": (
        "Not found: no such object in your organisation, or (platform staff) an `?org_id=` naming no organisation."
    ),
    "411": "A chunked body the server cannot read to its end: send a Content-Length.",
    "413": "The request body is too large.",
    "415": "Unsupported `Content-Type`.",
    "429": "Too many requests: retry after `Retry-After` seconds.",
    "503": "Storage is unavailable or a query ran out of time: retry after `Retry-After` seconds.",
}

RETRY_AFTER = {
    "schema": {"type": "integer", "minimum": 0},
    "description": "Seconds to wait before retrying.",
    "required": True,
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}


def without_storage(view: _View) -> _View:
    """Marks an API view that never answers 503 because it does not need the database
    (liveness: it reports a Redis outage as "degraded"). Class-based or `@api_view` views."""
    target: Any = getattr(view, "cls", view)
    target.uses_storage = False
    return view


def _may_refuse_authenticated(view: Any, method: str, permission: object) -> bool:
    """Whether `permission` can turn away a caller who is authenticated."""
    # A tuple, not `AllowAny | IsAuthenticated`: DRF overloads `|` on permission classes.
    if isinstance(permission, (AllowAny, IsAuthenticated)):  # noqa: UP038
        return False
    if getattr(permission, "checks_view_role", False):
        return view.required_role(method) is not None
    return True


def _is_tenant_scoped(view: Any) -> bool:
    # Marked by tenants' OrgAPIView: core cannot import the apps built on it.
    return getattr(view, "tenant_scoped", False)


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema plus the error statuses each operation can answer."""

    def get_operation(
        self, path: str, path_regex: str, path_prefix: str, method: str, registry: Any
    ) -> dict[str, Any] | None:
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None:
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and not parameter.get("required"):
                    # The query parsers read a blank value as "not given" (HTML forms send
                    # their empty fields), so the schema must not call `?start=` invalid.
                    parameter["allowEmptyValue"] = True
            responses = operation["responses"]
            for code, response in responses.items():
                if code >= "400":
                    self._as_error(code, response)
            for code in sorted(self.error_statuses(operation)):
                if code not in responses:
                    responses[code] = self._error_response(code)
                    continue
                # The view answers this status with a body of its own, but the same status
                # can also come from a layer in front of it (authentication reading the
                # database, the parser): either body.
                media = responses[code]["content"][JSON]
                if media["schema"] != ERROR_REF and ERROR_REF not in media["schema"].get("anyOf", []):
                    media["schema"] = {"anyOf": [media["schema"], ERROR_REF]}
        return operation

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        # A serializer marked `closed` documents a body that refuses fields it does not name
        # (400 naming the field), so generated requests do not carry invented ones.
        if getattr(serializer, "closed", False) and direction == "request":
            schema["additionalProperties"] = False
        return schema

    def error_statuses(self, operation: dict[str, Any]) -> set[str]:
        view, method = self.view, self.method
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        tenant_scoped = _is_tenant_scoped(view)
        permissions = view.get_permissions()
        codes = set()
        if has_body or tenant_scoped or any(p["in"] == "query" and p["name"] == "format" for p in parameters):
            codes.add("400")
        if view.get_authenticators():
            # Even where no credential is needed, a bad one is refused rather than ignored.
            codes.add("401")
        if any(_may_refuse_authenticated(view, method, p) for p in permissions):
            codes.add("403")
        if tenant_scoped or any(p["in"] == "path" for p in parameters):
            codes.add("404")
        if has_body:
            codes.update(("411", "413"))
            if isinstance(view.get_content_negotiator(), DefaultContentNegotiation):
                codes.add("415")
        if view.get_throttles():
            codes.add("429")
        if getattr(view, "uses_storage", True):
            codes.add("503")
        return codes

    def get_override_parameters(self) -> list[Any]:
        """A strict view's operations (core.strict_query) also take `?format=`, one of its
        renderers' formats (a view that declares `format` itself overrides this one)."""
        parameters = list(super().get_override_parameters())
        if getattr(self.view, "strict_query", False):
            formats = render_formats(self.view.get_renderers())
            description = "the answer's format" if len(formats) > 1 else f"{formats[0]} only"
            parameters.insert(0, OpenApiParameter("format", OpenApiTypes.STR, enum=formats, description=description))
        return parameters

    def _error_response(self, code: str) -> dict[str, Any]:
        response = self._get_response_for_code(ERROR, code, media_types=[JSON])
        response["description"] = DESCRIPTIONS[code]
        if code in ("429", "503"):
            response["headers"] = {"Retry-After": RETRY_AFTER}
        return response

    def _as_error(self, code: str, response: dict[str, Any]) -> None:
        """Error responses are JSON whatever the view renders otherwise; one declared without
        a body gets the `Error` body, and 429/503 carry `Retry-After`."""
        content = response.get("content")
        if content:
            response["content"] = {JSON: content.get(JSON) or next(iter(content.values()))}
        else:
            response["content"] = self._get_response_for_code(ERROR, code, media_types=[JSON])["content"]
        # The throttles and the storage errors send Retry-After; a view's own 503 body (the
        # detailed health check) is a report, not a retry hint.
        if code in ("429", "503") and response["content"][JSON].get("schema") == ERROR_REF:
            response.setdefault("headers", {}).setdefault("Retry-After", RETRY_AFTER)
        if not response.get("description"):
            response["description"] = DESCRIPTIONS.get(code, "")
