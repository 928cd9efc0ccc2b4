"""telemetry.queries.feature_find: the one lookup of a feature by id or key that the
analytics filters, the feature pages and the forecasts share."""

import pytest

from telemetry.models import Feature
from telemetry.queries import feature_find

pytestmark = pytest.mark.django_db


def test_a_feature_is_found_by_id_then_by_key_in_its_organisation_only(org, other_org):
    search = Feature.objects.create(organization=org, key="search", name="Search")
    year = Feature.objects.create(organization=org, key="9000000000000000001", name="A key of digits")
    foreign = Feature.objects.create(organization=other_org, key="export", name="Export")
    assert feature_find(org, search.pk) == search
    assert feature_find(org, str(search.pk)) == search
    assert feature_find(org, "search") == search
    assert feature_find(org, "9000000000000000001") == year  # digits, but no feature has that id: the key answers
    assert feature_find(org, foreign.pk) is None
    assert feature_find(org, "export") is None
    assert feature_find(org, "missing") is None
    assert feature_find(org, None) is None


def test_by_id_only_ignores_keys(org):
    year = Feature.objects.create(organization=org, key="9000000000000000001", name="A key of digits")
    assert feature_find(org, year.pk, by_key=False) == year
    assert feature_find(org, "9000000000000000001", by_key=False) is None
    assert feature_find(org, "search", by_key=False) is None


def test_a_feature_is_found_by_its_name_when_no_key_matches_and_only_one_has_it(org, other_org):
    """What a person types into a filter box: the name, whatever its case, of one feature."""
    scream = Feature.objects.create(organization=org, key="feature_288", name="Scream (1996)")
    Feature.objects.create(organization=other_org, key="x", name="Only theirs")
    assert feature_find(org, "scream (1996)") == scream
    assert feature_find(org, "Only theirs") is None
    Feature.objects.create(organization=org, key="a", name="Twice")
    Feature.objects.create(organization=org, key="b", name="twice")
    assert feature_find(org, "Twice") is None
    assert feature_find(org, "Scream (1996)", by_key=False) is None
