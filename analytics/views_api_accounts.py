"""Accounts API: the tenant's customer companies, listed with their recent usage and one by
one (`analytics.queries.accounts`). Thin views, as the rest of the analytics API."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from core.pagination import page_body, pagination_parameters
from core.strict_query import strict_schema

from . import params, queries, schema
from .views_api import BAD_INPUT, AnalyticsView

_ACCOUNT_WINDOWS = (
    "Figures cover the 4 weeks ending on `end` (default today); `trend_pct` compares their events with the "
    "4 weeks before (null when those had none) and `at_risk` is true when events fell by 30 % or more."
)


class AccountListView(AnalyticsView):
    @strict_schema(
        operation_id="analytics_accounts_list",
        summary="Accounts (customer companies) with recent usage, trend and at-risk flag",
        description=_ACCOUNT_WINDOWS,
        parameters=[
            OpenApiParameter("end", OpenApiTypes.DATE, description="last UTC day of the recent 4 weeks"),
            OpenApiParameter("search", OpenApiTypes.STR, description="external id or name contains"),
            OpenApiParameter("at_risk", OpenApiTypes.BOOL, description="only the accounts at risk (or not)"),
            OpenApiParameter(
                "feature", OpenApiTypes.STR, description="only accounts using this feature (id, key or name)"
            ),
            OpenApiParameter("sort", OpenApiTypes.STR, enum=list(params.ACCOUNT_SORTS)),
            *pagination_parameters(),
        ],
        responses={200: schema.AccountList, 400: BAD_INPUT},
    )
    def get(self, request):
        data = queries.account_list(self.org, **params.account_list_params(self.org, request.query_params))
        return Response(page_body(request, data["page"], data["page_size"], data["count"], data["results"]))


class AccountDetailView(AnalyticsView):
    @strict_schema(
        operation_id="analytics_account_retrieve",
        summary="One account: profile, people, features adopted and not, weekly series",
        description=_ACCOUNT_WINDOWS,
        parameters=[OpenApiParameter("end", OpenApiTypes.DATE, description="last UTC day of the recent 4 weeks")],
        responses={200: schema.AccountDetail, 400: BAD_INPUT, 404: BAD_INPUT},
    )
    def get(self, request, account_id):
        return Response(
            queries.account_detail(self.org, account_id, **params.account_detail_params(request.query_params))
        )
