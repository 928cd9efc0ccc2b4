from django.urls import path

from . import views_api

urlpatterns = [
    path("usage-summary", views_api.UsageSummaryView.as_view(), name="analytics-usage-summary"),
    path("feature-usage", views_api.FeatureUsageView.as_view(), name="analytics-feature-usage"),
    path("user-activity", views_api.UserActivityView.as_view(), name="analytics-user-activity"),
    path("timeseries", views_api.TimeseriesView.as_view(), name="analytics-timeseries"),
    path("retention", views_api.RetentionView.as_view(), name="analytics-retention"),
    path("top-users", views_api.TopUsersView.as_view(), name="analytics-top-users"),
    path("funnel", views_api.FunnelView.as_view(), name="analytics-funnel"),
    path("users/<str:external_id>", views_api.EndUserDetailView.as_view(), name="analytics-end-user"),
    path("aggregate/run", views_api.AggregateRunView.as_view(), name="analytics-aggregate-run"),
]
