"""Ids with a slash (`google-oauth2/123`, `org/team`): ingestion takes them, so the API's
end-user and account routes must reach them too, as the pages do (`<path:>` routes), and
nothing after those routes may be shadowed."""

import pytest
from django.urls import resolve

from core.days import today

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"


@pytest.fixture
def sent(key_client, admin_client):
    event = {"feature": "export", "user_id": "team/alice", "account_id": "team/acme", "session_duration": 30}
    assert key_client.post("/api/v1/events/track", event, format="json").status_code == 201
    assert admin_client.post(f"{BASE}/aggregate/run?date={today()}").status_code == 200


def test_an_end_user_and_an_account_with_a_slash_end_to_end(analyst_client, sent):
    for url in (f"{BASE}/users/team/alice", f"{BASE}/users/team%2Falice"):
        response = analyst_client.get(url)
        assert response.status_code == 200, (url, response.content)
        assert response.json()["user_id"] == "team/alice"
    for url in (f"{BASE}/accounts/team/acme", f"{BASE}/accounts/team%2Facme"):
        response = analyst_client.get(url)
        assert response.status_code == 200, (url, response.content)
        assert response.json()["account_id"] == "team/acme"
    assert analyst_client.get(f"{BASE}/users/team/bob").status_code == 404


def test_the_path_routes_shadow_nothing():
    assert resolve(f"{BASE}/aggregate/run").url_name == "aggregate-run"
    assert resolve(f"{BASE}/accounts").url_name == "accounts"
    assert resolve(f"{BASE}/users/a/b/c").kwargs == {"external_id": "a/b/c"}
