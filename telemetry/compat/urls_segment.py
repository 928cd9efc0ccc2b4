"""/v1/: Segment's and RudderStack's tracking API (`/v1/batch` and one route per call)."""

from django.urls import path

from .views import SegmentView

app_name = "segment"

urlpatterns = [
    path("batch", SegmentView.as_view(), name="batch"),
    *(
        path(call, SegmentView.as_view(call=call), name=call)
        for call in ("track", "identify", "page", "screen", "group", "alias")
    ),
]
