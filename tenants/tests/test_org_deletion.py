"""Deleting an organisation (tenants.org_deletion): shut at once by the admin's request, its
rows deleted chunk by chunk in the background, runs taking turns through a lease. That every
row of every app goes, and none of another organisation's, is checked with rows of every
model in usage_platform/tests/test_org_deletion.py."""

import io
import time
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from conftest import PASSWORD, client_for, make_member
from core.testing import page_client
from tenants import org_deletion, services, tasks
from tenants.models import ApiKey, Invitation, Organization, Role, User

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


@pytest.fixture
def staff_client(client, db):
    staff = User.objects.create_superuser(email="root@platform.example", password=PASSWORD)
    client.force_login(staff)
    return client


def test_the_admin_delete_shuts_the_organisation_and_leaves_its_rows_to_a_worker(
    staff_client,
    org,
    admin_user,
    raw_api_key,
    other_org,
    django_assert_max_num_queries,
    django_capture_on_commit_callbacks,
):
    """The delete ran Django's cascade in the request: past gunicorn's 30 s for a real tenant,
    the worker killed, the delete rolled back, and the keys still working. Now the request
    writes a handful of rows whatever the organisation holds, and shuts it at once."""
    for batch in range(3):
        send_events(raw_api_key, 400, start=batch * 400)
    other_key = services.api_key_create(org=other_org, name="other")[1]
    pages, token = page_client(admin_user), client_for(admin_user)
    assert pages.get("/").status_code == 200
    assert token.get("/api/v1/auth/me").status_code == 200
    before = rows_of(org.pk)

    url = reverse("admin:tenants_organization_delete", args=[org.pk])
    started = time.monotonic()
    # No query per row: Django's page checks each kind of row once (CascadeDeleteAdmin),
    # then the request writes a few rows, the same for 1,200 events as for none.
    with django_assert_max_num_queries(60), django_capture_on_commit_callbacks():
        response = staff_client.post(url, {"post": "yes"})
    assert time.monotonic() - started < 5
    assert response.status_code == 302
    assert "being deleted" in staff_client.get(response["Location"]).content.decode()
    org.refresh_from_db()
    assert org.deletion_requested_at is not None
    assert rows_of(org.pk) == before  # nothing deleted in the request: that is the worker's

    body = assert_error(key_client(raw_api_key).post(TRACK, {"feature": "f0"}, format="json"), 401)
    assert "revoked" in body["detail"]
    assert pages.get("/").status_code == 302  # signed out: to the login page
    assert token.get("/api/v1/auth/me").status_code == 401
    login = APIClient().post("/api/v1/auth/login", {"username": admin_user.email, "password": PASSWORD})
    assert login.status_code == 401
    assert key_client(other_key).post(TRACK, {"feature": "f0"}, format="json").status_code == 201

    listed = staff_client.get(reverse("admin:tenants_organization_changelist") + "?state=deleting").content.decode()
    assert "being deleted since" in listed and org.name in listed and other_org.name not in listed


def test_delete_selected_shuts_each_and_says_they_are_on_their_way_out(
    staff_client, org, other_org, django_capture_on_commit_callbacks
):
    third = make_member(Organization.objects.create(name="Third", slug="third"), Role.ADMIN).organization
    url = reverse("admin:tenants_organization_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [org.pk, other_org.pk]}
    assert "Are you sure" in staff_client.post(url, chosen).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url, {**chosen, "post": "yes"}, follow=True)
    page = response.content.decode()
    assert "being deleted" in page and "Successfully deleted" not in page
    # The tasks ran eagerly once the request committed.
    assert list(Organization.objects.values_list("pk", flat=True)) == [third.pk]
    assert not any(rows_of(org.pk).values()) and any(rows_of(third.pk).values())


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


def test_its_invitations_are_withdrawn_and_its_accounts_stay_inactive(org, admin_user, staff_client):
    _, token = services.invitation_create(org=org, email="new@acme.example", role=Role.MEMBER, invited_by=admin_user)
    staff = User.objects.get(is_superuser=True)
    staff.organization = org
    staff.save()
    org_deletion.organizations_deletion_request([org], send_task=False)
    assert Invitation.objects.get(organization=org).status == "revoked"
    accepted = APIClient().post(
        "/api/v1/auth/accept-invite", {"token": token, "password": "A-long-pass-42"}, format="json"
    )
    assert accepted.status_code == 400 and "withdrawn" in accepted.json()["detail"]
    admin_user.refresh_from_db()
    staff.refresh_from_db()
    # Platform staff who belong to it keep the admin (the last step deletes them, as before).
    assert not admin_user.is_active and staff.is_active
    change = reverse("admin:tenants_user_change", args=[admin_user.pk])
    form = {"email": admin_user.email, "full_name": "", "organization": org.pk, "role": "admin", "is_active": "on"}
    response = staff_client.post(change, form)
    assert response.status_code == 200 and "is being deleted" in response.content.decode()
    admin_user.refresh_from_db()
    assert not admin_user.is_active


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


def test_the_command_deletes_with_the_same_service_and_shows_its_progress(org, other_org, analyst_user, capsys):
    out = io.StringIO()
    call_command("delete_organization", org.slug, "--yes", "--chunk-rows", "1", stdout=out)
    assert f"Deleted {org.name}" in out.getvalue()
    assert "rows" in capsys.readouterr().err  # the progress bar, on stderr
    assert not Organization.objects.filter(pk=org.pk).exists() and not any(rows_of(org.pk).values())
    assert Organization.objects.filter(pk=other_org.pk).exists() and any(rows_of(other_org.pk).values())


def test_the_command_asks_first_and_leaves_a_run_at_work_alone(org, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="--yes"):
        call_command("delete_organization", str(org.pk))
    assert Organization.objects.get(pk=org.pk).deletion_requested_at is None

    org_deletion.organizations_deletion_request([org], send_task=False)
    Organization.objects.filter(pk=org.pk).update(deletion_heartbeat_at=timezone.now())
    with pytest.raises(CommandError, match="A worker is deleting"):
        call_command("delete_organization", str(org.pk), "--yes", "--no-progress")
    assert Organization.objects.filter(pk=org.pk).exists()
