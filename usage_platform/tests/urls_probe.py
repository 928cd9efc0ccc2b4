"""The real URLconf plus probe views that exist only in tests: an ingestion-key endpoint
(to test key authentication without depending on the telemetry app), views that crash
(to test that DEBUG=False never shows a stack trace) and views whose query outlasts a
statement timeout or holds a value the database refuses (PostgreSQL)."""

from django.db import connection, transaction
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


def _slow_query():
    # In a savepoint, so the cancelled statement leaves the test's transaction usable.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(5)")


def _refused_value():
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT %s::text", ["nul \x00 inside"])


class ProbeSlowAPI(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request):
        _slow_query()
        return Response({})


class ProbeRefusedValueAPI(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request):
        _refused_value()
        return Response({})


def probe_slow_plain(request):
    _slow_query()


def probe_refused_value_plain(request):
    _refused_value()


def probe_domain_error_plain(request):
    from core.exceptions import DomainError

    raise DomainError("start: Enter a valid date.", errors={"start": ["Enter a valid date."]})


urlpatterns = [
    path("api/v1/_probe/ingest", ProbeIngest.as_view()),
    path("api/v1/_probe/crash", ProbeCrashAPI.as_view()),
    path("api/v1/_probe/crash-plain", probe_crash_plain),
    path("_probe/crash-page", probe_crash_plain),
    path("api/v1/_probe/leaky-member/<int:member_id>", ProbeLeakyMember.as_view()),
    path("api/v1/_probe/validates-first/<int:member_id>", ProbeValidatesFirst.as_view()),
    path("api/v1/_probe/slow", ProbeSlowAPI.as_view()),
    path("api/v1/_probe/slow-plain", probe_slow_plain),
    path("_probe/slow-page", probe_slow_plain),
    path("api/v1/_probe/refused-value", ProbeRefusedValueAPI.as_view()),
    path("_probe/refused-value-page", probe_refused_value_plain),
    path("api/v1/_probe/domain-error-plain", probe_domain_error_plain),
    path("_probe/domain-error-page", probe_domain_error_plain),
    *real_urlpatterns,
]
