"""Deleting an organisation (tenants.org_deletion): shut at once by the admin's request, its
rows deleted chunk by chunk in the background, runs taking turns through a lease. That every
row of every app goes, and none of another organisation's, is checked with rows of every
model in usage_platform/tests/test_org_deletion.py."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import PASSWORD, client_for
from tenants import org_deletion, services, tasks
from tenants.models import ApiKey, Organization, User

from .test_auth_api import assert_error

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/events/batch"
TRACK = "/api/v1/events/track"


def rows_of(org_id):
    """{table: rows} of every table pointing at the organisation (through the app registry:
    tenants' tests import no app above it)."""
    return {
        table.label: table.model._base_manager.filter(**{table.org_field: org_id}).count()
        for table in org_deletion.deletion_plan()
    }


def key_client(raw):
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw)
    return client


def send_events(raw, n, start=0):
    body = {"events": [{"feature": f"f{i % 3}", "user_id": f"u{i % 7}"} for i in range(start, start + n)]}
    response = key_client(raw).post(BATCH, body, format="json")
    assert response.status_code in (200, 201), response.content


def test_staff_reach_no_organisation_being_deleted_through_the_api(org):
    staff = User.objects.create_superuser(email="root@platform.example", password=PASSWORD)
    assert client_for(staff).get(f"/api/v1/org?org_id={org.pk}").status_code == 200
    org_deletion.organizations_deletion_request([org], send_task=False)
    assert_error(client_for(staff).get(f"/api/v1/org?org_id={org.pk}"), 404)
    assert_error(client_for(staff).post(f"/api/v1/org/api-keys?org_id={org.pk}", {"name": "k"}, format="json"), 404)


def test_a_key_made_after_the_request_is_refused_too(org):
    org_deletion.organizations_deletion_request([org], send_task=False)
    _, raw = services.api_key_create(org=org, name="late")
    assert services.api_key_authenticate(raw_key=raw, origin=None) is None


def test_the_plan_covers_every_table_pointing_at_organisations_each_before_what_it_points_at():
    owned = {
        model
        for model in apps.get_models()
        if model is not Organization
        and not model._meta.proxy
        and any(f.is_relation and f.related_model is Organization for f in model._meta.concrete_fields)
    }
    plan = [table.model for table in org_deletion.deletion_plan()]
    assert set(plan) == owned and len(plan) == len(owned)
    for position, model in enumerate(plan):
        targets = {f.related_model for f in model._meta.concrete_fields if f.is_relation} & owned
        assert all(plan.index(target) > position for target in targets - {model}), model
    plain = [t for t in org_deletion.deletion_plan() if not t.cascade]
    assert User not in [t.model for t in plain]  # admin log entries and memberships point at people


def test_runs_take_turns_through_the_lease_and_a_stalled_one_is_resumed(
    org, analyst_user, api_key_pair, django_capture_on_commit_callbacks
):
    org_deletion.organizations_deletion_request([org], send_task=False)
    first = org_deletion.organization_delete_run(org.pk, chunk_rows=1, seconds=0)
    assert (first.state, first.rows, first.total) == ("paused", 1, 1)
    # The beat entry leaves a run at work alone; another run without its lease is turned away.
    assert org_deletion.deletions_stalled() == []
    assert org_deletion.organization_delete_run(org.pk, chunk_rows=1).state == "busy"
    second = org_deletion.organization_delete_run(org.pk, lease=first.lease, chunk_rows=1, seconds=0)
    assert (second.state, second.rows, second.total) == ("paused", 1, 2)
    assert Organization.objects.get(pk=org.pk).deletion_rows == 2

    # Its worker died holding the lease: once that is older than LEASE the beat entry sends
    # a run, which finishes (eagerly here).
    Organization.objects.filter(pk=org.pk).update(
        deletion_heartbeat_at=timezone.now() - org_deletion.LEASE - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.organization_deletions_resume() == [org.pk]
    assert not Organization.objects.filter(pk=org.pk).exists()
    assert not ApiKey.objects.filter(organization_id=org.pk).exists()
    assert org_deletion.organization_delete_run(org.pk).state == "gone"


def test_a_run_that_fails_mid_way_keeps_its_chunks_and_frees_its_lease(org, analyst_user, member_user, monkeypatch):
    org_deletion.organizations_deletion_request([org], send_task=False)
    before = sum(rows_of(org.pk).values())
    real, deleted = org_deletion._chunk_delete, []

    def failing(*args):
        if deleted:  # the chunk after the first that deleted a row
            raise RuntimeError("database went away")
        count = real(*args)
        deleted.extend([count] if count else [])
        return count

    monkeypatch.setattr(org_deletion, "_chunk_delete", failing)
    with pytest.raises(RuntimeError):
        org_deletion.organization_delete_run(org.pk, chunk_rows=1)
    assert sum(rows_of(org.pk).values()) == before - 1
    assert Organization.objects.get(pk=org.pk).deletion_heartbeat_at is None
    monkeypatch.setattr(org_deletion, "_chunk_delete", real)
    assert org_deletion.deletions_stalled() == [org.pk]
    assert org_deletion.organization_delete_run(org.pk, chunk_rows=1).state == "done"
