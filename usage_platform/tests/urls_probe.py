"""The real URLconf plus probe views that exist only in tests: an ingestion-key endpoint
(to test key authentication without depending on the telemetry app) and views that crash
(to test that DEBUG=False never shows a stack trace)."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.permissions import IngestAPIView
from usage_platform.urls import handler400, handler403, handler404, handler500
from usage_platform.urls import urlpatterns as real_urlpatterns

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]


class ProbeIngest(IngestAPIView):
    def post(self, request):
        return Response({"organization_id": self.org.pk, "principal": str(request.user)})


class ProbeCrashAPI(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request):
        raise RuntimeError("secret internals: password=hunter2")


def probe_crash_plain(request):
    raise RuntimeError("secret internals: password=hunter2")


urlpatterns = [
    path("api/v1/_probe/ingest", ProbeIngest.as_view()),
    path("api/v1/_probe/crash", ProbeCrashAPI.as_view()),
    path("api/v1/_probe/crash-plain", probe_crash_plain),
    path("_probe/crash-page", probe_crash_plain),
    *real_urlpatterns,
]
