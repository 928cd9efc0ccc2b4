"""/api/v1/events/: ingestion (the hot path, tried first in usage_platform/urls.py)."""

from django.urls import path

from . import views_api
from .cors import ingest_cors

app_name = "events"

urlpatterns = [
    path("track", ingest_cors(views_api.EventTrackView.as_view()), name="track"),
    path("batch", ingest_cors(views_api.EventBatchView.as_view()), name="batch"),
]
