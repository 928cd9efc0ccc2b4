"""/insights/: the Insights page, its actions, and the forecast fragment."""

from django.urls import path

from . import views_pages as views

app_name = "insights"

urlpatterns = [
    path("", views.insights, name="index"),
    path("anomalies/<int:anomaly_id>/status/", views.anomaly_status, name="anomaly-status"),
    path("narrative/refresh/", views.narrative_refresh, name="narrative-refresh"),
    # The feature detail page (analytics) embeds this with hx-get; see docs/decisions.md.
    path("forecast/<int:feature_id>/", views.feature_forecast, name="feature-forecast"),
    path("forecast/", views.feature_forecast, name="forecast"),
]
