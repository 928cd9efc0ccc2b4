"""/api/v1/analytics/: the dashboard figures as JSON (and CSV)."""

from django.urls import path

from . import views_api, views_api_accounts

app_name = "analytics"

urlpatterns = [
    path("usage-summary", views_api.UsageSummaryView.as_view(), name="usage-summary"),
    path("feature-usage", views_api.FeatureUsageView.as_view(), name="feature-usage"),
    path("user-activity", views_api.UserActivityView.as_view(), name="user-activity"),
    path("timeseries", views_api.TimeseriesView.as_view(), name="timeseries"),
    path("retention", views_api.RetentionView.as_view(), name="retention"),
    path("top-users", views_api.TopUsersView.as_view(), name="top-users"),
    path("funnel", views_api.FunnelView.as_view(), name="funnel"),
    path("users/<path:external_id>", views_api.EndUserDetailView.as_view(), name="end-user"),
    path("accounts", views_api_accounts.AccountListView.as_view(), name="accounts"),
    path("accounts/<path:account_id>", views_api_accounts.AccountDetailView.as_view(), name="account"),
    path("aggregate/run", views_api.AggregateRunView.as_view(), name="aggregate-run"),
]
