"""Ingestion keys authenticate SDK requests; revoked or unknown keys are refused with 401."""

from types import SimpleNamespace

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from core import local_cache
from tenants import services
from tenants.models import ApiKey

from .test_auth_api import assert_error

pytestmark = [pytest.mark.django_db, pytest.mark.urls("usage_platform.tests.urls_probe")]

PROBE = "/api/v1/_probe/ingest"


def key_client(raw, header="authorization"):
    client = APIClient()
    if header == "authorization":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    else:
        client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_active_key_authenticates_as_its_organisation(org, raw_api_key, header):
    response = key_client(raw_api_key, header).post(PROBE, {}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["organization_id"] == org.pk


def test_last_used_is_tracked(api_key_pair):
    api_key, raw = api_key_pair
    assert api_key.last_used_at is None
    key_client(raw).post(PROBE, {}, format="json")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_revoked_key_is_refused(org, api_key_pair):
    api_key, raw = api_key_pair
    services.api_key_revoke(org=org, key_id=api_key.pk)
    body = assert_error(key_client(raw).post(PROBE, {}, format="json"), 401)
    assert "revoked" in body["detail"]


def test_revoked_through_the_api_is_refused(admin_client, api_key_pair):
    api_key, raw = api_key_pair
    assert admin_client.delete(f"/api/v1/org/api-keys/{api_key.pk}").status_code == 204
    assert_error(key_client(raw, "x-api-key").post(PROBE, {}, format="json"), 401)


@pytest.mark.parametrize("raw", ["upk_" + "x" * 32, "upk_", "upk_" + "y" * 500])
def test_unknown_key_is_refused(db, raw):
    assert_error(key_client(raw, "x-api-key").post(PROBE, {}, format="json"), 401)


def test_no_credentials(db):
    assert_error(APIClient().post(PROBE, {}, format="json"), 401)


def test_a_user_token_also_reaches_ingest_views(member_client, org):
    response = member_client.post(PROBE, {}, format="json")
    assert response.status_code == 200
    assert response.json()["organization_id"] == org.pk


def test_key_is_stored_only_as_hash(api_key_pair):
    api_key, raw = api_key_pair
    row = ApiKey.objects.get(pk=api_key.pk)
    assert raw not in (row.key_hash, row.prefix, row.name)
    assert raw.startswith(row.prefix)
    assert len(raw) == 36 and raw.startswith("upk_")


def test_last_used_is_touched_at_most_once_a_minute(api_key_pair, django_assert_num_queries):
    api_key, raw = api_key_pair
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    with django_assert_num_queries(1):
        assert services.api_key_authenticate(raw_key=raw, origin=None) is not None


def test_a_known_key_is_served_from_the_process_cache(api_key_pair, django_assert_num_queries):
    api_key, raw = api_key_pair
    assert services.api_key_authenticate(raw_key=raw, origin=None) is not None  # looks it up, touches last_used_at
    with django_assert_num_queries(0):
        assert services.api_key_authenticate(raw_key=raw, origin=None).pk == api_key.pk


def test_a_cached_key_revoked_here_is_refused_at_once(admin_client, api_key_pair):
    api_key, raw = api_key_pair
    assert key_client(raw).post(PROBE, {}, format="json").status_code == 200
    assert admin_client.delete(f"/api/v1/org/api-keys/{api_key.pk}").status_code == 204
    assert_error(key_client(raw).post(PROBE, {}, format="json"), 401)


def test_a_key_revoked_by_another_process_is_refused_once_the_cache_expires(settings, api_key_pair, monkeypatch):
    """Another process's revocation reaches this one only through the database, so it takes
    effect when this process's cached entry expires (API_KEY_CACHE_SECONDS). The caches'
    clock is moved by hand: a busy machine once spent the whole time-to-live of a real one
    between two requests."""
    clock = [1_000.0]
    monkeypatch.setattr(local_cache, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    settings.API_KEY_CACHE_SECONDS = 30
    api_key, raw = api_key_pair
    assert key_client(raw).post(PROBE, {}, format="json").status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())  # as another process would
    clock[0] += 29
    assert key_client(raw).post(PROBE, {}, format="json").status_code == 200
    clock[0] += 2
    assert_error(key_client(raw).post(PROBE, {}, format="json"), 401)


def test_caching_can_be_turned_off(settings, api_key_pair):
    settings.API_KEY_CACHE_SECONDS = 0
    api_key, raw = api_key_pair
    assert key_client(raw).post(PROBE, {}, format="json").status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    assert_error(key_client(raw).post(PROBE, {}, format="json"), 401)


def test_a_cached_key_deleted_here_is_refused_at_once(api_key_pair):
    api_key, raw = api_key_pair
    assert key_client(raw).post(PROBE, {}, format="json").status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).delete()  # as the admin's delete does
    assert_error(key_client(raw).post(PROBE, {}, format="json"), 401)
