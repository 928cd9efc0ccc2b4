from django.urls import path

from . import views_api

urlpatterns = [
    path("events/track", views_api.EventTrackView.as_view(), name="events-track"),
    path("events/batch", views_api.EventBatchView.as_view(), name="events-batch"),
]
