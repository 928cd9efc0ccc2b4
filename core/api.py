"""Pieces every API view module repeats: body validation, the 204 answer, bounded integer
query parameters and the schema of a paginated list endpoint. The documented error body
they list is `core.openapi.ERROR`."""

from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from .openapi import ERROR
from .pagination import paginated_schema, pagination_parameters


def int_query(name: str, *, minimum: int, maximum: int | None = None, description: str = "") -> OpenApiParameter:
    """An integer query parameter with the bounds its parser enforces."""
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum}
    if maximum is not None:
        schema["maximum"] = maximum
    return OpenApiParameter(name, schema, description=description)


def validated(serializer_class: type[serializers.BaseSerializer], request: Request, *, partial: bool = False) -> Any:
    """The request body validated by `serializer_class`; a 400 naming the fields otherwise."""
    serializer = serializer_class(data=request.data, partial=partial)
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
    """`@extend_schema` of a GET answering a page of `serializer_class` rows."""
    return extend_schema(
        operation_id=operation_id,
        parameters=pagination_parameters(),
        responses={200: paginated_schema(serializer_class), **dict.fromkeys(errors, ERROR)},
        tags=tags,
        **kwargs,
    )
