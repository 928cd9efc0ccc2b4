"""Pieces every API view module repeats: body validation, the 204 answer, bounded integer
query parameters and the schema of a paginated list endpoint. The documented error body
they list is `core.openapi.ERROR`."""

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from .openapi import ERROR
from .pagination import paginated_schema, pagination_parameters
from .strict_query import strict_schema


def int_query(name: str, *, minimum: int, maximum: int | None = None, description: str = "") -> OpenApiParameter:
    """An integer query parameter with the bounds its parser enforces."""
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return OpenApiParameter(name, schema, description=description)


# Taken in any body: platform staff name the organisation they act on with `org_id`, in the
# query or the body (tenants.permissions); it is ignored for anyone else.
BODY_ALWAYS = ("org_id",)


def body_check(
    data: Any, takes: Iterable[str], *, refused: Mapping[str, str] | None = None, ignored: Iterable[str] = ()
) -> None:
    """Refuse (400) every top-level body field `takes` does not name, all at once: a misspelt
    or read-only field (`nmae`, `id`) is never silently ignored. `refused` gives some names a
    reason of their own; `ignored` are taken and not used (a protocol's fields, such as OAuth2's
    `grant_type`). A body that is not an object is left to the serializer's own error."""
    if not isinstance(data, Mapping):
        return
    names = tuple(takes)
    reasons = refused or {}
    unknown = sorted((set(data) - set(names) - set(ignored) - set(BODY_ALWAYS)) | (set(data) & set(reasons)))
    if unknown:
        why = f"Unknown field; this takes {', '.join(names)}." if names else "Unknown field; this takes no body."
        raise serializers.ValidationError({name: [reasons.get(name, why)] for name in unknown})


def validated(serializer_class: type[serializers.BaseSerializer], request: Request, *, partial: bool = False) -> Any:
    """The request body validated by `serializer_class`; a 400 naming the fields otherwise,
    including every field the serializer does not take (its `BODY_REFUSED` and `BODY_IGNORED`
    are `body_check`'s `refused` and `ignored`)."""
    serializer = serializer_class(data=request.data, partial=partial)
    fields = getattr(serializer, "fields", {})
    body_check(
        request.data,
        (name for name, field in fields.items() if not field.read_only),
        refused=getattr(serializer, "BODY_REFUSED", None),
        ignored=getattr(serializer, "BODY_IGNORED", ()),
    )
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def declared_length(request: HttpRequest) -> int:
    """The request's Content-Length, 0 when absent or not a number."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def no_content() -> Response:
    return Response(status=status.HTTP_204_NO_CONTENT)


def list_schema(
    serializer_class: type[serializers.BaseSerializer],
    *,
    operation_id: str,
    tags: list[str],
    errors: Iterable[int] = (403,),
    **kwargs: Any,
) -> Callable[[Any], Any]:
    """`@extend_schema` of a GET answering a page of `serializer_class` rows; the handler takes
    `page` and `page_size` and no other query parameter (core.strict_query)."""
    return strict_schema(
        operation_id=operation_id,
        parameters=pagination_parameters(),
        responses={200: paginated_schema(serializer_class), **dict.fromkeys(errors, ERROR)},
        tags=tags,
        **kwargs,
    )
