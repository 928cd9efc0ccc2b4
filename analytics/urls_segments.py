"""/api/v1/org/segments: the organisation's saved segments. Beside tenants' `org` routes in
the API, but the rows are analytics' (tenants may not import them)."""

from django.urls import include, path

from . import views_segments as v

app_name = "segments"

urlpatterns = [
    # The prefix has no slash because `/api/v1/org/segments` itself is a route.
    path("", v.SegmentListView.as_view(), name="list"),
    path("/", include([path("<int:segment_id>", v.SegmentDetailView.as_view(), name="detail")])),
]
