"""The one list shape of the API: `{count, next, previous, results}`.

`paginate()` lets a plain `APIView` (our `OrgAPIView`) page a queryset or list the same way a
generic view would, and `paginated_schema()` documents that envelope for drf-spectacular."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    """`{count, next, previous, results}`, `?page=` and `?page_size=` (at most 500)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


def paginate(request, items, serializer_class, *, view=None, context=None):
    """A paginated Response of `items` (queryset or list) rendered with `serializer_class`.
    An out-of-range `?page=` answers 404 in the API error shape, as DRF's generic views do."""
    paginator = StandardPagination()
    page = paginator.paginate_queryset(items, request, view=view)
    data = serializer_class(page, many=True, context={"request": request, **(context or {})}).data
    return paginator.get_paginated_response(data)


_schemas = {}


def paginated_schema(serializer_class):
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


def pagination_parameters():
    """`page` and `page_size` query parameters for `@extend_schema(parameters=...)`."""
    return [
        OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1."),
        OpenApiParameter("page_size", OpenApiTypes.INT, description="Rows per page (default 50, at most 500)."),
    ]
