"""The whole URL map, one hop from each route to the file that serves it.

Every include has its own prefix and namespace (`reverse("api:org:members")`,
`{% url "settings:api-keys" %}`); only the dashboard's pages share the root, and the three
sign-in pages are listed here as they are. Django tries patterns in order: ingestion first
(`events/track` is the most frequent request by far), then the rest of the API, then pages."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from core.security_headers import csp_extended
from telemetry.compat import views as sdk_compat
from telemetry.cors import ingest_cors
from tenants import views_pages as sign_in

from . import health

api_v1 = [
    path("events/", include("telemetry.urls_api")),
    path("auth/", include("tenants.urls_auth")),
    # Before tenants' `org`: insights owns the webhook rows (tenants may not import insights).
    path("org/webhooks", include("insights.urls_webhooks")),
    # Likewise analytics owns the saved segments.
    path("org/segments", include("analytics.urls_segments")),
    path("org/alert-rules", include("insights.alerts.urls_api")),
    path("org", include("tenants.urls_org")),
    path("analytics/", include("analytics.urls_api")),
    path("ai/", include("insights.urls_api")),
    path("health", health.liveness, name="health"),
    path("health/detailed", health.detailed, name="health-detailed"),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"))),
    # Ingestion in the wire formats of the SDKs teams already run (docs/sdks.md). Segment's and
    # RudderStack's share `v1/`; PostHog's four routes share no prefix (its SDKs post to these
    # exact paths), so, like the sign-in pages, they are listed here.
    path("v1/", include("telemetry.compat.urls_segment")),
    path("batch/", ingest_cors(sdk_compat.PostHogCaptureView.as_view()), name="posthog-batch"),
    path("capture/", ingest_cors(sdk_compat.PostHogCaptureView.as_view()), name="posthog-capture"),
    path("e/", ingest_cors(sdk_compat.PostHogCaptureView.as_view()), name="posthog-e"),
    path("i/v0/e/", ingest_cors(sdk_compat.PostHogCaptureView.as_view()), name="posthog-i-v0-e"),
    # The rest of PostHog's paths (posthog-js asks `/flags/`, `/decide/`, `/array/<key>/config`)
    # answer a JSON 404, not the site's HTML page.
    re_path(r"^(?:batch|capture|e|i|decide|flags|array|s|engage)/", ingest_cors(sdk_compat.not_found)),
    # In front of the admin's own login URL: the same view with the throttle's 429 status.
    path("admin/login/", sign_in.admin_login),
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
    # Browsers ask for /favicon.ico on pages that name no icon (the admin, Swagger UI, a file).
    path("favicon.ico", RedirectView.as_view(url=f"{settings.STATIC_URL}img/favicon.svg", permanent=True)),
    path("login/", sign_in.LoginView.as_view(), name="login"),
    path("logout/", sign_in.LogoutView.as_view(), name="logout"),
    path("invite/<str:token>/", sign_in.invitation_accept, name="invitation-accept"),
    path("settings/webhooks/", include("insights.urls_settings")),
    path("settings/alert-rules/", include("insights.alerts.urls_settings")),
    path("settings/", include("tenants.urls_settings")),
    path("insights/", include("insights.urls_pages")),
    path("", include("analytics.urls_pages")),
]

handler400 = "core.errors.bad_request"
handler403 = "core.errors.permission_denied"
handler404 = "core.errors.page_not_found"
handler500 = "core.errors.server_error"

admin.site.site_header = "Usage Platform — staff"
admin.site.site_title = "Usage Platform admin"
