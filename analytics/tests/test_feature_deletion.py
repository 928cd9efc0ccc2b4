"""Deleting a feature takes its events, and the next rollup takes them out of every figure:
the organisation's, the per-user, segment and dimension rows of its days were summed over
all features and kept counting the deleted feature's events and users."""

from datetime import date

import pytest

from analytics import rollup
from telemetry.models import DirtyDay, Feature
from tenants.models import Organization

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"
D1, D2 = date(2026, 3, 4), date(2026, 3, 9)


@pytest.fixture
def two_features(org):
    """search: u1 on D1; export: u2 (41) on D1 and D2, u1 on D2, one anonymous event on D1."""
    search, export = feature(org, "search"), feature(org, "export")
    u1, u2 = end_user(org, "u1", age=30, gender="F"), end_user(org, "u2", age=41, gender="M")
    event(org, search, u1, at(str(D1), "23:59:59.999"))
    for person, day in ((u2, D1), (u2, D2), (u1, D2), (None, D1)):
        event(org, export, person, at(str(day), "00:00:00"))
    rollup.rollup_range(D1, D2, org)
    return search, export


def figures(client, **filters):
    query = {"start": D1, "end": D2, **filters}
    summary = client.get(f"{BASE}/usage-summary", query).json()
    top = client.get(f"{BASE}/top-users", query).json()["results"]
    points = client.get(f"{BASE}/timeseries", {**query, "metric": "active_users"}).json()["points"]
    return (
        {k: summary[k]["value"] for k in ("total_events", "active_users", "features_tracked")},
        [(row["user_id"], row["events"]) for row in top],
        [p["value"] for p in points if p["value"]],
    )


def test_a_deleted_features_days_are_re_rolled(analyst_client, org, two_features):
    _, export = two_features
    export.delete()
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == {D1, D2}
    rollup.rollup_dirty()
    # Left: u1's one search event on D1.
    assert figures(analyst_client) == ({"total_events": 1, "active_users": 1, "features_tracked": 1}, [("u1", 1)], [1])
    kept = figures(analyst_client, age="18-40", gender="F")
    assert kept == ({"total_events": 1, "active_users": 1, "features_tracked": 1}, [("u1", 1)], [1])
    assert figures(analyst_client, age=">40")[0] == {"total_events": 0, "active_users": 0, "features_tracked": 0}
    split = analyst_client.get(f"{BASE}/usage-summary", {"start": D1, "end": D2, "breakdown": "event_type"}).json()
    assert split["breakdown"]["events"] == [{"key": "interaction", "value": 1}]


def test_features_deleted_as_a_queryset_are_marked_too(org, two_features):
    Feature.objects.filter(organization=org, key__in=["search", "export"]).delete()
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == {D1, D2}


def test_an_organisations_delete_marks_nothing(org, two_features):
    """Its rows all go: a mark written for its features would point at a deleted organisation."""
    org_id = org.pk
    Organization.objects.filter(pk=org_id).delete()
    assert not DirtyDay.objects.filter(organization_id=org_id).exists()
