import pytest
import redis


@pytest.fixture
def queue(settings, redis_url):
    """Queue mode on the shared test Redis (REDIS_TEST_URL); yields a client of it."""
    settings.REDIS_URL = redis_url
    settings.INGEST_MODE = "queue"
    # That Redis keeps no AOF: these tests are about the stream, not durability
    # (test_durability.py checks the refusal on servers of its own).
    settings.INGEST_ALLOW_VOLATILE_REDIS = True
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def sdk_connections_closed():
    """The SDK clients keep pooled keep-alive connections in module-level sessions; closed
    after the test, so no live-server thread is left waiting on one when the run ends."""
    yield
    import posthog.request
    import rudderstack.analytics.request
    import segment.analytics.request

    posthog.request.reset_sessions()
    segment.analytics.request._session.close()
    rudderstack.analytics.request._session.close()
