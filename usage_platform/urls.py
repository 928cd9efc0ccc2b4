from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.security_headers import csp_extended
from tenants.views_pages import admin_login

from . import health

# Ingestion first, then the rest of the API before the pages: Django tries patterns in order,
# and `events/track` is the most frequent request by far. No two includes share a path.
api_v1 = [
    path("", include("telemetry.urls_api")),
    path("", include("tenants.urls_api")),
    path("analytics/", include("analytics.urls_api")),
    path("", include("insights.urls_api")),
    path("health", health.liveness, name="api-health"),
    path("health/detailed", health.detailed, name="api-health-detailed"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # In front of the admin's own login URL: the same view with the throttle's 429 status.
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's set-up script from its own URL (no inline script);
    # Swagger UI's stylesheet draws its icons from data: URIs, allowed on this route only.
    path(
        "api/docs/",
        csp_extended(SpectacularSwaggerSplitView.as_view(url_name="schema"), img_src=["data:"]),
        name="swagger-ui",
    ),
    path("health", health.liveness, name="health"),
    path("health/detailed", health.detailed, name="health-detailed"),
    path("", include("tenants.urls_pages")),
    path("", include("analytics.urls_pages")),
    path("", include("insights.urls_pages")),
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"

admin.site.site_header = "Usage Platform — staff"
admin.site.site_title = "Usage Platform admin"
