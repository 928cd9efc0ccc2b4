"""Nothing a client sends is silently ignored: on every organisation endpoint a query
parameter or body field the operation does not take is a 400 naming it (core.strict_query,
core.api.validated), and nothing is changed. The operations are read from the OpenAPI
schema, so an endpoint added later is walked too."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from conftest import client_for
from tenants.models import ApiKey, Organization

from .test_openapi import NOT_STRICT, V1

pytestmark = pytest.mark.django_db

UNKNOWN = "definitely_not_a_field"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def _collection_operations(schema, methods):
    """(method, path) of the strict operations whose path names no object."""
    for path, operations in schema["paths"].items():
        if not path.startswith(f"{V1}/") or path.startswith(NOT_STRICT) or "{" in path:
            continue
        for method in operations:
            if method in methods:
                yield method, path


def _refused(response, name):
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert name in body["errors"], body
    assert name in body["detail"], body


def test_every_read_refuses_a_query_parameter_it_does_not_take(schema, admin_client, org):
    walked = 0
    for _, path in _collection_operations(schema, ("get",)):
        _refused(admin_client.get(path, {UNKNOWN: "1"}), UNKNOWN)
        walked += 1
    assert walked >= 15


def test_every_write_refuses_a_body_field_it_does_not_take(schema, admin_client, org):
    from analytics.models import Segment
    from insights.models import AlertRule, Webhook
    from tenants.models import Invitation

    def rows():
        return [
            model.objects.filter(organization=org).count()
            for model in (ApiKey, Invitation, Segment, AlertRule, Webhook)
        ]

    before = rows()
    walked = 0
    for method, path in _collection_operations(schema, ("post", "patch", "put")):
        response = getattr(admin_client, method)(path, {UNKNOWN: 1}, format="json")
        _refused(response, UNKNOWN)
        walked += 1
    assert walked >= 7
    # Refused before anything is made: no key, invitation, segment, rule or webhook appeared.
    assert not ApiKey.objects.filter(organization=org).exclude(name="").filter(name=UNKNOWN).exists()
    assert rows() == before


def test_a_misspelt_organisation_field_changes_nothing(admin_client, org):
    response = admin_client.patch(f"{V1}/org", {"name": "Renamed", "alert_treshold": 5}, format="json")
    _refused(response, "alert_treshold")
    assert "alert_threshold" in response.json()["errors"]["alert_treshold"][0]
    org.refresh_from_db()
    assert org.name != "Renamed"


def test_a_read_only_field_is_refused_by_name(admin_client, org):
    created = admin_client.post(f"{V1}/org/segments", {"name": "Women", "filters": {"gender": "F"}}, format="json")
    assert created.status_code == 201, created.content
    segment_id = created.json()["id"]
    response = admin_client.patch(f"{V1}/org/segments/{segment_id}", {"id": 999, "name": "W"}, format="json")
    _refused(response, "id")


def test_a_list_refuses_a_filter_it_does_not_have(admin_client, org):
    # Members cannot be filtered by role: `?role=` was answered with every member.
    _refused(admin_client.get(f"{V1}/org/members", {"role": "admin"}), "role")
    assert admin_client.get(f"{V1}/org/members", {"page_size": 5}).status_code == 200


def test_aggregate_run_refuses_a_body_field_for_its_days(admin_client, org):
    # `{"day": …}` used to roll up yesterday instead, and say so only in the answer's dates.
    _refused(admin_client.post(f"{V1}/analytics/aggregate/run", {"day": "2026-11-01"}, format="json"), "day")
    ran = admin_client.post(f"{V1}/analytics/aggregate/run", {"date": "2026-11-01"}, format="json")
    assert ran.status_code == 200, ran.content
    assert ran.json()["since"] == "2026-11-01"


def test_staff_name_their_organisation_in_the_body(django_user_model, org):
    staff = django_user_model.objects.create_superuser(email="staff-body@example.com", password="x-long-pass-123")
    response = client_for(staff).patch(f"{V1}/org", {"org_id": org.pk, "name": "Chosen by staff"}, format="json")
    assert response.status_code == 200, response.content
    assert Organization.objects.get(pk=org.pk).name == "Chosen by staff"


def test_ingestion_takes_the_parameters_sdks_add(key_client):
    response = key_client.post(
        f"{V1}/events/track?ver=3.1.0&_=1733100000000",
        {"feature": "export", "user_id": "u-1", "event_type": "feature_used"},
        format="json",
    )
    assert response.status_code in (201, 202), response.content


def test_an_api_keys_read_only_fields_say_how_to_change_them(admin_client, api_key_pair):
    api_key, _ = api_key_pair
    response = admin_client.patch(f"{V1}/org/api-keys/{api_key.pk}", {"is_active": False}, format="json")
    _refused(response, "is_active")
    assert "DELETE" in response.json()["errors"]["is_active"][0]
    api_key.refresh_from_db()
    assert api_key.is_active
