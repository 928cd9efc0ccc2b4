"""/v1/: Segment's and RudderStack's tracking API (`/v1/batch` and one route per call)."""

from django.urls import path, re_path

from ..cors import ingest_cors
from .views import SegmentView, not_found

app_name = "segment"

urlpatterns = [
    path("batch", ingest_cors(SegmentView.as_view()), name="batch"),
    *(
        path(call, ingest_cors(SegmentView.as_view(call=call)), name=call)
        for call in ("track", "identify", "page", "screen", "group", "alias")
    ),
    re_path(r"", ingest_cors(not_found)),  # any other path under v1/: a JSON 404
]
