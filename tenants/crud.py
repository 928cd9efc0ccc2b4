"""Org-scoped CRUD over the API, shared by the settings-style endpoints (webhooks, alert
rules): a collection view (GET a page, POST one) and an item view (GET, PATCH, DELETE one),
admins only. A subclass names its serializers and the service functions to call; every
function takes the organisation, so a row of another organisation is a 404 from the
service, never a query here. The OpenAPI text stays on the subclass (`extend_schema_view`),
since summaries and operation ids are the endpoint's own."""

from abc import ABCMeta, abstractmethod
from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import no_content, validated
from core.pagination import paginate

from .models import Organization, Role
from .permissions import OrgAPIView

Serializer = type[serializers.BaseSerializer]


# No docstrings on these two: drf-spectacular shows a view's nearest docstring as its
# operations' description, which stays OrgAPIView's as before.


class OrgCollectionView(OrgAPIView, metaclass=ABCMeta):
    # GET: a page of `output_serializer` rows from `rows`; POST: `input_serializer`'s data to
    # `create`, answered 201 with `created_serializer` (default `output_serializer`).

    default_role = Role.ADMIN
    output_serializer: Serializer
    input_serializer: Serializer
    created_serializer: Serializer | None = None

    @abstractmethod
    def rows(self, org: Organization) -> QuerySet[Any]: ...

    @abstractmethod
    def create(self, org: Organization, request: Request, data: dict[str, Any]) -> Model: ...

    def get(self, request: Request) -> Response:
        return paginate(request, self.rows(self.org), self.output_serializer, view=self)

    def post(self, request: Request) -> Response:
        row = self.create(self.org, request, validated(self.input_serializer, request))
        answer = self.created_serializer or self.output_serializer
        return Response(answer(row).data, status=status.HTTP_201_CREATED)


class OrgItemView(OrgAPIView, metaclass=ABCMeta):
    # One row, named by the URL's `lookup` argument: GET it, PATCH it with the fields
    # `update_serializer` accepts (all optional), DELETE it (204).

    default_role = Role.ADMIN
    lookup: str
    output_serializer: Serializer
    update_serializer: Serializer

    @abstractmethod
    def item(self, org: Organization, pk: int) -> Model: ...

    @abstractmethod
    def update(self, org: Organization, pk: int, data: dict[str, Any]) -> Model: ...

    @abstractmethod
    def remove(self, org: Organization, pk: int) -> None: ...

    def get(self, request: Request, **kwargs: int) -> Response:
        return Response(self.output_serializer(self.item(self.org, kwargs[self.lookup])).data)

    def patch(self, request: Request, **kwargs: int) -> Response:
        # Looked up before the body is judged: another organisation's row is a 404 whatever
        # it was sent, never revealed by a 400.
        self.item(self.org, kwargs[self.lookup])
        data = validated(self.update_serializer, request, partial=True)
        return Response(self.output_serializer(self.update(self.org, kwargs[self.lookup], data)).data)

    def delete(self, request: Request, **kwargs: int) -> Response:
        self.remove(self.org, kwargs[self.lookup])
        return no_content()
