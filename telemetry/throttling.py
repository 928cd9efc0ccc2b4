"""Per-credential rate limit for the ingestion endpoints (scope "ingest")."""

from django.conf import settings

from core.rate_limit import WindowRateThrottle
from tenants.authentication import ApiKeyPrincipal


class IngestRateThrottle(WindowRateThrottle):
    """INGEST_THROTTLE_RATE per API key (or per person for JWT callers). When the counter's
    Redis is unreachable the request is let through: an ingestion endpoint must not drop
    events because its rate limiter is down."""

    scope = "ingest"
    what = "ingestion throttle off (events pass uncounted)"

    def rate(self):
        return settings.INGEST_THROTTLE_RATE

    def ident(self, request):
        user = request.user
        if isinstance(user, ApiKeyPrincipal):
            return f"key:{user.api_key.pk}"
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}"
        return None
