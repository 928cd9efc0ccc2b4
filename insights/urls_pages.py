from django.urls import path

from . import views_pages as views

urlpatterns = [
    path("insights/", views.insights, name="insights"),
    path("insights/anomalies/<int:anomaly_id>/status/", views.anomaly_status, name="insights-anomaly-status"),
    path("insights/narrative/refresh/", views.narrative_refresh, name="insights-narrative-refresh"),
    # The feature detail page (analytics) embeds this with hx-get; see docs/decisions.md.
    path("insights/forecast/<int:feature_id>/", views.feature_forecast, name="insights-feature-forecast"),
    path("insights/forecast/", views.feature_forecast, name="insights-forecast"),
    # Settings → Webhooks (insights owns the rows; tenants may not import insights).
    path("settings/webhooks/", views.webhooks, name="settings-webhooks"),
    path("settings/webhooks/<int:webhook_id>/toggle/", views.webhook_toggle, name="settings-webhook-toggle"),
    path("settings/webhooks/<int:webhook_id>/delete/", views.webhook_delete, name="settings-webhook-delete"),
]
