from contextlib import contextmanager
from datetime import date

import pytest
from django.test.utils import override_settings

from conftest import make_org
from tenants.models import Organization, User

from .factories import at, end_user, event, feature
from .filters_data import OTHER_TENANT_SLUG, filters_fixture

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
    with shared_organisation(django_db_blocker, lambda admin: None) as (admin, _):
        yield admin.organization


def shared_admin_fixture(marker: str, shared: str):
    """An `admin_user` fixture for a module whose tests mostly read one data set built once:
    a test that asks for `marker` gets the admin (element 0) of the module-scoped fixture
    `shared`, so its `org`, clients and members are that data set's; any other test gets a new
    organisation's admin, as everywhere else (the empty states need one without events)."""

    @pytest.fixture
    def admin_user(request, db):
        if marker in request.fixturenames:
            return request.getfixturevalue(shared)[0]
        return make_org("Acme")

    return admin_user


@contextmanager
def shared_organisation(django_db_blocker, build, *, also=()):
    """A new organisation and its admin, with `build(admin)` run on it, committed (outside any
    test's transaction) for a module's tests: yields (admin, what `build` returned). At the
    end the organisation goes with everything it owns, its people, and the organisations
    named by slug in `also` (the other tenants `build` made)."""
    with committed_writes(django_db_blocker):
        admin = make_org("Acme")
        built = build(admin)
    try:
        yield admin, built
    finally:
        with committed_writes(django_db_blocker):
            User.objects.filter(organization=admin.organization).delete()
            Organization.objects.filter(pk=admin.organization.pk).delete()
            Organization.objects.filter(slug__in=also).delete()


@pytest.fixture(scope="module")
def filters_shared(django_db_setup, django_db_blocker):
    """`filters_data.filters_fixture` built and rolled up once for a module (it rolls two
    organisations over three weeks: 3-4 s a test on PostgreSQL): (admin, fixture)."""
    with shared_organisation(
        django_db_blocker, lambda admin: filters_fixture(admin.organization), also=[OTHER_TENANT_SLUG]
    ) as shared:
        yield shared
