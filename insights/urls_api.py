from django.urls import path

from . import views_api as v

urlpatterns = [
    path("ai/anomalies", v.AnomalyListView.as_view(), name="api-anomalies"),
    path("ai/anomalies/<int:anomaly_id>", v.AnomalyDetailView.as_view(), name="api-anomaly-detail"),
    path("ai/usage-insights", v.UsageInsightsView.as_view(), name="api-usage-insights"),
    path("ai/chart-data", v.ChartDataView.as_view(), name="api-chart-data"),
    path("ai/usage-prediction", v.UsagePredictionView.as_view(), name="api-usage-prediction"),
    path("org/webhooks", v.WebhookListView.as_view(), name="api-webhooks"),
    path("org/webhooks/<int:webhook_id>", v.WebhookDetailView.as_view(), name="api-webhook-detail"),
    path(
        "org/webhooks/<int:webhook_id>/deliveries",
        v.WebhookDeliveryListView.as_view(),
        name="api-webhook-deliveries",
    ),
]
