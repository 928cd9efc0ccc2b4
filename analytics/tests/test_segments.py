"""Saved segments: the API (analyst+, 404 across organisations, one error per bad filter)
and `?segment=<id>` standing for its filters."""

import pytest

from analytics import segments
from analytics.filters import filter_set_parse
from analytics.models import Segment
from telemetry.models import Account
from tenants.models import User

from .factories import feature

pytestmark = pytest.mark.django_db

URL = "/api/v1/org/segments"


def test_create_list_update_delete(analyst_client, org):
    feature(org, "export")
    created = analyst_client.post(
        URL, {"name": "Teen exporters", "filters": {"age": "<18", "gender": "f", "feature": "export"}}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["filters"] == {"age": "<18", "feature": "export", "gender": "F"}
    listed = analyst_client.get(URL).json()
    assert [row["name"] for row in listed["results"]] == ["Teen exporters"]

    url = f"{URL}/{body['id']}"
    patched = analyst_client.patch(url, {"filters": {"user.plan": "pro"}}, format="json")
    assert patched.status_code == 200
    assert patched.json()["filters"] == {"user.plan": "pro"} and patched.json()["name"] == "Teen exporters"
    assert analyst_client.patch(url, {"name": "Pro plan"}, format="json").json()["name"] == "Pro plan"
    assert analyst_client.delete(url).status_code == 204
    assert analyst_client.get(url).status_code == 404


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"age": "teen"}, "filters.age"),
        ({"gender": "X"}, "filters.gender"),
        ({"feature": "nope"}, "filters.feature"),
        ({"account": "acme"}, "filters.account"),
        ({"user.": "x"}, "filters.user."),
        ({"colour": "red"}, "filters.colour"),
        ({"age": ""}, "filters.age"),
        ({"age": ["<18"]}, "filters.age"),
        ({}, "filters"),
        ("age=<18", "filters"),
    ],
)
def test_bad_filters_are_a_400_naming_the_filter(analyst_client, filters, field):
    response = analyst_client.post(URL, {"name": "s", "filters": filters}, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"], response.json()


def test_names_are_unique_per_organisation(analyst_client, other_client):
    body = {"name": "Adults", "filters": {"age": ">40"}}
    assert analyst_client.post(URL, body, format="json").status_code == 201
    again = analyst_client.post(URL, body, format="json")
    assert again.status_code == 400 and "name" in again.json()["errors"]
    assert other_client.post(URL, body, format="json").status_code == 201


def test_members_may_not_use_segments(member_client):
    assert member_client.get(URL).status_code == 403
    assert member_client.post(URL, {"name": "s", "filters": {"age": "<18"}}, format="json").status_code == 403


def test_another_organisations_segment_is_404(analyst_client, other_org):
    theirs = segments.segment_create(other_org, name="Theirs", filters={"gender": "M"})
    url = f"{URL}/{theirs.pk}"
    assert analyst_client.get(url).status_code == 404
    assert analyst_client.patch(url, {"name": "mine"}, format="json").status_code == 404
    assert analyst_client.delete(url).status_code == 404
    assert Segment.objects.filter(pk=theirs.pk, name="Theirs").exists()
    response = analyst_client.get(f"/api/v1/analytics/usage-summary?segment={theirs.pk}")
    assert response.status_code == 400 and "segment" in response.json()["errors"]


def test_segment_stands_for_its_filters_and_typed_filters_win(org):
    export = feature(org, "export")
    feature(org, "search")
    saved = segments.segment_create(org, name="s", filters={"age": "<18", "feature": "export", "user.plan": "pro"})
    assert filter_set_parse(org, {"segment": str(saved.pk)}) == {
        "feature": export,
        "age": "<18",
        "user_properties": {"plan": "pro"},
    }
    overridden = filter_set_parse(org, {"segment": str(saved.pk), "age": ">40", "feature_id": "search"})
    assert overridden["age"] == ">40" and overridden["feature"].key == "search"


def test_a_saved_filter_that_no_longer_holds_is_refused_as_the_segments(analyst_client, org):
    """The API named `feature`, a parameter the request never gave."""
    feature(org, "export")
    saved = segments.segment_create(org, name="Exporters", filters={"feature": "export"})
    Segment.objects.filter(pk=saved.pk).update(filters={"feature": "deleted-since"})
    response = analyst_client.get(f"/api/v1/analytics/usage-summary?segment={saved.pk}")
    assert response.status_code == 400
    refused = "This segment's feature filter no longer applies: Unknown feature."
    assert response.json()["errors"] == {"segment": [refused]}
    # A typed filter that is wrong is still named as itself.
    typed = analyst_client.get(f"/api/v1/analytics/usage-summary?segment={saved.pk}&feature=nope")
    assert typed.status_code == 400 and "feature" in typed.json()["errors"]


def test_list_query_count(analyst_client, org, django_assert_num_queries):
    for name in ("a", "b", "c"):
        segments.segment_create(org, name=name, filters={"age": "<18"})
    # the user (with its organisation), then the count and the page
    with django_assert_num_queries(3):
        assert analyst_client.get(URL).json()["count"] == 3


@pytest.mark.parametrize(
    "filters, message",
    [
        ('["age", "<18"]', "Give an object of filters."),
        ('{"age": "bogus"}', "Choose one of"),
        ('{"account": "theirs"}', "Unknown"),
    ],
)
def test_the_admin_checks_a_segments_filters_as_the_api_does(client, org, other_org, filters, message):
    """Saved unchecked in the admin, a list broke every page the segment was picked on (and the
    Segments page) with a 500; another organisation's account, the figures."""
    Account.objects.create(organization=other_org, external_id="theirs")
    saved = segments.segment_create(org, name="Teens", filters={"age": "<18"})
    client.force_login(User.objects.create_superuser(email="staff-segments@usage-platform.example", password="pw"))
    form = {
        "organization": org.pk,
        "name": "Teens",
        "filters": filters,
        "updated_at_0": "2026-12-01",
        "updated_at_1": "00:00",
    }
    response = client.post(f"/admin/analytics/segment/{saved.pk}/change/", form)
    assert response.status_code == 200 and message in response.content.decode()
    saved.refresh_from_db()
    assert saved.filters == {"age": "<18"}
    form["filters"] = '{"gender": "female"}'  # normalised as the API stores it
    assert client.post(f"/admin/analytics/segment/{saved.pk}/change/", form).status_code == 302
    saved.refresh_from_db()
    assert saved.filters == {"gender": "F"}
