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
