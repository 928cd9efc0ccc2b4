from contextlib import contextmanager
from datetime import date

import pytest
from django.test.utils import override_settings

from conftest import make_org

from .factories import at, end_user, event, feature

D1, D2, D3 = date(2025, 3, 1), date(2025, 3, 2), date(2025, 3, 3)


@pytest.fixture
def dataset(org):
    """Three days of events with known answers (see each test for the arithmetic):

    2025-03-01  u1 search 10:00 s1 60s · u1 export 10:05 s1 120s · u2 search 23:59:59 s2 30s
    2025-03-02  u2 search 00:00:00 s3 90s · anonymous search 09:00 (no session, no duration)
    2025-03-03  u3 export 08:00 s4 30s
    """
    search, export = feature(org, "search"), feature(org, "export")
    u1 = end_user(org, "u1", age=25, gender="F", first_seen=at("2025-03-01", "10:00:00"))
    u2 = end_user(org, "u2", age=45, gender="M", first_seen=at("2025-03-01", "23:59:59"))
    u3 = end_user(org, "u3", age=15, gender="O", first_seen=at("2025-03-03", "08:00:00"))
    event(org, search, u1, at("2025-03-01", "10:00:00"), session="s1", duration=60)
    event(org, export, u1, at("2025-03-01", "10:05:00"), session="s1", duration=120)
    event(org, search, u2, at("2025-03-01", "23:59:59"), session="s2", duration=30)
    event(org, search, u2, at("2025-03-02", "00:00:00"), session="s3", duration=90)
    event(org, search, None, at("2025-03-02", "09:00:00"))
    event(org, export, u3, at("2025-03-03", "08:00:00"), session="s4", duration=30)
    return {"search": search, "export": export, "u1": u1, "u2": u2, "u3": u3}


@contextmanager
def committed_writes(django_db_blocker):
    """Database writes outside any test's transaction, so they outlive it (a module's shared
    data), with the settings every test runs under (a local cache, no Redis, direct mode)."""
    local_cache = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shared"}}
    with django_db_blocker.unblock(), override_settings(CACHES=local_cache, REDIS_URL="", INGEST_MODE="direct"):
        yield


@pytest.fixture(scope="module")
def module_org(django_db_setup, django_db_blocker):
    """An organisation for a module's tests that only read (or change and roll back, inside
    their test's transaction) one data set built once: rolling a long data set up for each
    test cost 10-20 s a test on PostgreSQL. Deleted with everything it owns at the module's end."""
    with committed_writes(django_db_blocker):
        admin = make_org("Shared")
    yield admin.organization
    with committed_writes(django_db_blocker):
        admin.organization.delete()
        admin.delete()
