"""/api/v1/ai/: anomalies, the narrative, chart data and forecasts."""

from django.urls import path

from . import views_api as v

app_name = "ai"

urlpatterns = [
    path("anomalies", v.AnomalyListView.as_view(), name="anomalies"),
    path("anomalies/<int:anomaly_id>", v.AnomalyDetailView.as_view(), name="anomaly"),
    path("usage-insights", v.UsageInsightsView.as_view(), name="usage-insights"),
    path("chart-data", v.ChartDataView.as_view(), name="chart-data"),
    path("usage-prediction", v.UsagePredictionView.as_view(), name="usage-prediction"),
]
