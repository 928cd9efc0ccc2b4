"""The one list shape of the API: `{count, next, previous, results}`.

`paginate()` lets a plain `APIView` (our `OrgAPIView`) page a queryset or list the same way a
generic view would, and `paginated_schema()` documents that envelope for drf-spectacular."""

import re
from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from .exceptions import DomainError

# ASCII digits only: int() also takes "١٢", "1_000" and "+5".
_DIGITS = re.compile(r"[0-9]+")


class StandardPagination(PageNumberPagination):
    """`{count, next, previous, results}`, `?page=` and `?page_size=` (at most 500)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        """`?page_size=`: blank is the default and more than 500 is cut to 500, as DRF does; but
        where DRF quietly used the default for `abc`, `0` or `-1`, that is a 400, as for every
        other parameter (the caller asked for something else than it gets)."""
        raw = (request.query_params.get(self.page_size_query_param) or "").strip()
        if not raw:
            return self.page_size
        digits = raw.lstrip("0")
        if not _DIGITS.fullmatch(raw) or not digits:
            message = "A positive integer is required."
            raise DomainError(f"page_size: {message}", errors={"page_size": [message]})
        # Past a few digits only "a lot" matters (and int() of thousands of digits costs time).
        return min(int(digits) if len(digits) <= 6 else self.max_page_size, self.max_page_size)


def paginate(
    request: Request,
    items: QuerySet[Any, Any] | Sequence[Any],
    serializer_class: type[serializers.BaseSerializer],
    *,
    view: Any = None,
    context: dict[str, Any] | None = None,
) -> Response:
    """A paginated Response of `items` (queryset or list) rendered with `serializer_class`.
    An out-of-range `?page=` answers 404 in the API error shape, as DRF's generic views do."""
    paginator = StandardPagination()
    # DRF pages any sequence; its stubs say QuerySet only.
    page: list[Any] | None = paginator.paginate_queryset(items, request, view=view)  # type: ignore[arg-type]
    data = serializer_class(page, many=True, context={"request": request, **(context or {})}).data
    return paginator.get_paginated_response(data)


_schemas: dict[type[serializers.BaseSerializer], serializers.Serializer] = {}


def paginated_schema(serializer_class: type[serializers.BaseSerializer]) -> serializers.Serializer:
    """The OpenAPI component for a page of `serializer_class` rows (one per class)."""
    if serializer_class not in _schemas:
        name = serializer_class.__name__.removesuffix("Serializer")
        _schemas[serializer_class] = inline_serializer(
            name=f"Paginated{name}List",
            fields={
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": serializer_class(many=True),
            },
        )
    return _schemas[serializer_class]


def is_paginated_schema(schema: object) -> bool:
    """Whether `schema` is a page envelope from `paginated_schema()` (its endpoint answers 404
    past the last page)."""
    return any(schema is page for page in _schemas.values())


def pagination_parameters() -> list[OpenApiParameter]:
    """`page` and `page_size` query parameters for `@extend_schema(parameters=...)`."""
    return [
        OpenApiParameter("page", {"type": "integer", "minimum": 1}, description="Page number, from 1."),
        OpenApiParameter(
            "page_size",
            {"type": "integer", "minimum": 1},
            description="Rows per page (default 50; more than 500 is cut to 500).",
        ),
    ]
