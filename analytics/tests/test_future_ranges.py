"""A range of figures never reaches past today (QA pass 3, F10): days to come counted as zeros,
and their total compared with a whole previous period, read as a collapse ("-49 %")."""

from datetime import timedelta

import pytest

from core.days import today

pytestmark = pytest.mark.django_db

API = "/api/v1/analytics"


@pytest.mark.parametrize("endpoint", ["usage-summary", "timeseries", "feature-usage"])
def test_a_start_alone_ends_today_at_the_latest(admin_client, org, endpoint):
    start = today() - timedelta(days=12)
    response = admin_client.get(f"{API}/{endpoint}", {"start": start.isoformat()})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["end"] == today().isoformat()
    if endpoint == "timeseries":
        assert len(body["points"]) == 13


@pytest.mark.parametrize("endpoint", ["usage-summary", "timeseries", "top-users"])
def test_a_start_alone_longer_ago_than_the_default_range_still_ends_today(admin_client, org, endpoint):
    # As the schema says of `end` (it ran the default 30 days from the start instead).
    start = today() - timedelta(days=45)
    response = admin_client.get(f"{API}/{endpoint}", {"start": start.isoformat()})
    assert response.status_code == 200, response.content
    if endpoint != "top-users":
        assert response.json()["end"] == today().isoformat()


def test_an_end_after_today_is_cut_at_today_and_the_previous_period_has_the_same_length(admin_client, org):
    start = today() - timedelta(days=9)
    body = admin_client.get(
        f"{API}/usage-summary", {"start": start.isoformat(), "end": (today() + timedelta(days=20)).isoformat()}
    ).json()
    assert body["end"] == today().isoformat()
    assert body["previous_end"] == (start - timedelta(days=1)).isoformat()
    assert body["previous_start"] == (start - timedelta(days=10)).isoformat()


@pytest.mark.parametrize("endpoint", ["usage-summary", "timeseries", "retention", "top-users"])
def test_a_range_starting_after_today_is_refused(admin_client, org, endpoint):
    response = admin_client.get(f"{API}/{endpoint}", {"start": (today() + timedelta(days=1)).isoformat()})
    assert response.status_code == 400, response.content
    assert "start" in response.json()["errors"]
    assert "after today" in response.json()["detail"]


def test_the_dashboard_shows_up_to_today_for_a_range_reaching_past_it(client, admin_user, org):
    client.force_login(admin_user)
    start = today() - timedelta(days=5)
    response = client.get("/", {"start": start.isoformat(), "end": (today() + timedelta(days=25)).isoformat()})
    assert response.status_code == 200
    html = response.content.decode()
    assert f'value="{today().isoformat()}"' in html
    assert f'value="{(today() + timedelta(days=25)).isoformat()}"' not in html
