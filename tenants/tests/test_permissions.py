"""The tenancy helper and role permission: the organisation always comes from the caller,
except for platform staff, who pick one with `?org_id=`."""

import pytest

from conftest import PASSWORD, client_for
from tenants.models import User

from .test_auth_api import assert_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(db):
    return User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)


def test_org_id_of_someone_else_is_ignored_for_org_users(admin_client, org, other_org):
    assert admin_client.get(f"/api/v1/org?org_id={other_org.pk}").json()["id"] == org.pk
    response = admin_client.patch(f"/api/v1/org?org_id={other_org.pk}", {"name": "Hijacked"}, format="json")
    assert response.status_code == 200
    other_org.refresh_from_db()
    assert other_org.name == "Globex"
    members = admin_client.get(f"/api/v1/org/members?org_id={other_org.pk}").json()["results"]
    assert {m["email"] for m in members} == set(User.objects.filter(organization=org).values_list("email", flat=True))


def test_org_id_in_the_body_is_ignored_for_org_users(admin_client, org, other_org):
    response = admin_client.post("/api/v1/org/api-keys", {"name": "k", "org_id": other_org.pk}, format="json")
    assert response.status_code == 201
    assert not other_org.api_keys.exists() and org.api_keys.count() == 1


def test_staff_act_on_a_chosen_organisation(staff, org, other_org, other_admin):
    client = client_for(staff)
    members = client.get(f"/api/v1/org/members?org_id={other_org.pk}").json()
    assert [m["email"] for m in members["results"]] == [other_admin.email]
    response = client.post(f"/api/v1/org/api-keys?org_id={other_org.pk}", {"name": "support"}, format="json")
    assert response.status_code == 201
    assert other_org.api_keys.get().created_by == staff
    # The chosen organisation scopes object ids too.
    assert_error(client.delete(f"/api/v1/org/members/{other_admin.pk}?org_id={org.pk}"), 404)


def test_staff_org_id_in_the_body(staff, other_org):
    response = client_for(staff).post("/api/v1/org/api-keys", {"name": "k", "org_id": other_org.pk}, format="json")
    assert response.status_code == 201
    assert other_org.api_keys.count() == 1


def test_role_messages(member_client, analyst_client):
    assert "analyst" in assert_error(member_client.get("/api/v1/org"), 403)["detail"]
    assert "admin" in assert_error(analyst_client.get("/api/v1/org/members"), 403)["detail"]


def test_user_without_organisation_is_refused(db):
    loner = User.objects.create_user(email="loner@x.example", password=PASSWORD)
    body = assert_error(client_for(loner).get("/api/v1/org"), 403)
    assert "organisation" in body["detail"]


def test_staff_flag_alone_is_not_superuser(org):
    # is_staff opens the Django admin's door, not other tenants' data.
    staffer = User.objects.create_user(email="ops@platform.example", password=PASSWORD, is_staff=True)
    assert_error(client_for(staffer).get(f"/api/v1/org?org_id={org.pk}"), 403)
