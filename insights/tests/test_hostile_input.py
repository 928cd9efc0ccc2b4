"""Hostile query strings on the insights API and page: dates past what date arithmetic can
reach, feature references that are neither an id nor a key, integers past a bigint, NUL.
Each answers its exact status with the error shape (pages: their 4xx), never a 500."""

import pytest
from django.urls import reverse

from core.testing import page_client
from insights.tests.helpers import features_make, rollups_make, yesterday

pytestmark = pytest.mark.django_db

FAR_PAST = "0001-01-01"
FAR_FUTURE = "9999-12-31"
BIG = "99999999999999999999"


@pytest.fixture
def usage(org):
    features = features_make(org, 3)
    rollups_make(org, features, end=yesterday(), days=40)
    return features


def assert_refused(response, status, field=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"}
    if field:
        assert field in body["errors"], body


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        (f"chart-data?end={FAR_PAST}", 400, "end"),
        (f"chart-data?start={FAR_PAST}", 400, "start"),
        (f"chart-data?end={FAR_FUTURE}", 400, "end"),
        ("chart-data?feature=feature-0", 400, "feature"),
        (f"anomalies?start={FAR_PAST}", 400, "start"),
        (f"anomalies?end={FAR_FUTURE}", 400, "end"),
        ("anomalies?status=%00", 400, "status"),
        (f"anomalies?page={BIG}", 400, "page"),
        ("usage-prediction?feature=%C2%B2", 400, "feature"),  # an unknown feature, as in analytics
        (f"usage-prediction?feature={BIG}", 400, "feature"),
        ("usage-prediction?feature=%00", 400, "feature"),
        (f"usage-prediction?days={BIG}", 400, "days"),
        ("usage-prediction?days=%C2%B2", 400, "days"),
        ("usage-prediction?start=2025-01-01", 400, "start"),
    ],
)
def test_hostile_insights_queries(analyst_client, usage, path, status, field):
    assert_refused(analyst_client.get(f"/api/v1/ai/{path}"), status, field)


def test_anomaly_page_size_past_a_bigint_is_refused(analyst_client, usage):
    assert_refused(analyst_client.get(f"/api/v1/ai/anomalies?page_size={BIG}"), 400, "page_size")


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"/insights/?start={FAR_PAST}", 200),  # the anomaly filter's error is shown on the page
        (f"/insights/?page={BIG}", 200),  # Django's paginator falls back to the last page
        ("/insights/forecast/?feature=%C2%B2", 404),
        (f"/insights/forecast/?feature={BIG}", 404),
        ("/insights/forecast/?feature=%00", 404),
        ("/insights/forecast/", 404),
        (f"/insights/forecast/{BIG}/", 404),
        ("/insights/forecast/{feature}/?days=" + BIG, 400),
    ],
)
def test_hostile_insights_page_queries(analyst_user, usage, url, status):
    response = page_client(analyst_user).get(url.format(feature=usage[0].pk))
    assert response.status_code == status
    assert "Traceback" not in response.content.decode()


def test_anomaly_filter_error_is_shown(analyst_user, usage):
    response = page_client(analyst_user).get(reverse("insights:index"), {"start": FAR_PAST})
    assert "Enter a date from 1970-01-01" in response.content.decode()
