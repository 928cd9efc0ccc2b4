"""/api/v1/org/alert-rules: beside tenants' `org` routes in the API, but the rows are
insights' (tenants may not import them)."""

from django.urls import include, path

from . import views_api as v

app_name = "alert-rules"

urlpatterns = [
    # No slash in the prefix: `/api/v1/org/alert-rules` itself is a route.
    path("", v.AlertRuleListView.as_view(), name="list"),
    path(
        "/",
        include(
            [
                path("<int:rule_id>", v.AlertRuleDetailView.as_view(), name="detail"),
                path("<int:rule_id>/firings", v.AlertFiringListView.as_view(), name="firings"),
            ]
        ),
    ),
]
