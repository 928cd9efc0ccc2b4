"""/api/v1/events/: ingestion (the hot path, tried first in usage_platform/urls.py)."""

from django.urls import path

from . import views_api

app_name = "events"

urlpatterns = [
    path("track", views_api.EventTrackView.as_view(), name="track"),
    path("batch", views_api.EventBatchView.as_view(), name="batch"),
]
