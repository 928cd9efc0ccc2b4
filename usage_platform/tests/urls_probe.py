"""The real URLconf plus probe views that exist only in tests: an ingestion-key endpoint
(to test key authentication without depending on the telemetry app) and views that crash
(to test that DEBUG=False never shows a stack trace)."""

from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from tenants.permissions import IngestAPIView, OrgAPIView
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


class ProbeLeakyMember(APIView):
    """Deliberately wrong: looks a user up by id without the organisation (the tenancy walk
    must flag it)."""

    def get(self, request, member_id):
        from tenants.models import User

        return Response({"email": User.objects.get(pk=member_id).email})


class ProbeValidatesFirst(OrgAPIView):
    """Deliberately wrong: validates the body before the lookup, so a foreign id gets a 400."""

    def patch(self, request, member_id):
        from tenants import services

        if request.data.get("role") != "nonsense":
            return Response({"detail": "bad role", "errors": {"role": ["bad"]}}, status=400)
        services.member_get(org=self.org, user_id=member_id)
        return Response({})


def probe_crash_plain(request):
    raise RuntimeError("secret internals: password=hunter2")


urlpatterns = [
    path("api/v1/_probe/ingest", ProbeIngest.as_view()),
    path("api/v1/_probe/crash", ProbeCrashAPI.as_view()),
    path("api/v1/_probe/crash-plain", probe_crash_plain),
    path("_probe/crash-page", probe_crash_plain),
    path("api/v1/_probe/leaky-member/<int:member_id>", ProbeLeakyMember.as_view()),
    path("api/v1/_probe/validates-first/<int:member_id>", ProbeValidatesFirst.as_view()),
    *real_urlpatterns,
]
