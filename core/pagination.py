"""The one list shape of the API: `{count, next, previous, results}`, and one way of paging it.

`?page=` (from 1) and `?page_size=` (1–500, default 50) are read by `page_params`: anything
else (`abc`, `0`, `501`) is a 400 naming the parameter, never a quiet default or a cut. A page
past the last one is an empty `results` whose `previous` links the last page (the list may
have shrunk while a client paged it), never a 404. `paginate()` pages a queryset or list for a
plain `APIView` (our `OrgAPIView`); analytics' pages come cut from their query and use
`page_links` alone. `paginated_schema()` documents the envelope for drf-spectacular."""

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from .query_params import DEFAULT_PAGE_SIZE, MAX_PAGE, MAX_PAGE_SIZE, page_params


def page_links(request: Request, page: int, page_size: int, count: int) -> tuple[str | None, str | None]:
    """(`next`, `previous`) of page `page`: `previous` of a page past the end is the last page."""

    def link(number: int) -> str:
        query = request.query_params.copy()
        query["page"] = str(number)
        return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")

    last = max(1, -(-count // page_size))
    next_url = link(page + 1) if page < last else None
    return next_url, (link(min(page - 1, last)) if page > 1 else None)


def page_body(request: Request, page: int, page_size: int, count: int, results: Any) -> dict[str, Any]:
    next_url, previous_url = page_links(request, page, page_size, count)
    return {"count": count, "next": next_url, "previous": previous_url, "results": results}


class StandardPagination(BasePagination):
    """`page_params`' paging of a queryset or list (DRF's default paginator, for any generic view)."""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        self.page, self.page_size = page_params(request.query_params)
        self.count = queryset.count() if isinstance(queryset, QuerySet) else len(queryset)
        offset = (self.page - 1) * self.page_size
        return list(queryset[offset : offset + self.page_size]) if offset < self.count else []

    def get_paginated_response(self, data: Any) -> Response:
        return Response(page_body(self.request, self.page, self.page_size, self.count, data))


def paginate(
    request: Request,
    items: QuerySet[Any, Any] | Sequence[Any],
    serializer_class: type[serializers.BaseSerializer],
    *,
    view: Any = None,
    context: dict[str, Any] | None = None,
) -> Response:
    """A paginated Response of `items` (queryset or list) rendered with `serializer_class`."""
    paginator = StandardPagination()
    page = paginator.paginate_queryset(items, request, view=view)
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


def pagination_parameters() -> list[OpenApiParameter]:
    """`page` and `page_size` query parameters for `@extend_schema(parameters=...)`."""
    return [
        OpenApiParameter(
            "page",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
            description="Page number, from 1 (past the last page: no rows, `previous` links the last page).",
        ),
        OpenApiParameter(
            "page_size",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
            description=f"Rows per page (default {DEFAULT_PAGE_SIZE}, at most {MAX_PAGE_SIZE}).",
        ),
    ]
