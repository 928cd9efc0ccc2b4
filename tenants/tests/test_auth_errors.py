"""What a refused credential says: an expired access token is told apart from a forged one
(the client must refresh, not log in again), and an ingestion key on an endpoint for people
says what a key is for instead of "credentials were not provided"."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from tenants.authentication import INGESTION_KEY_ONLY

pytestmark = pytest.mark.django_db

SUMMARY = "/api/v1/analytics/usage-summary"


def bearer(token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_an_expired_token_says_it_expired(admin_user):
    token = AccessToken.for_user(admin_user)
    token.set_exp(lifetime=timedelta(minutes=-1))
    response = bearer(str(token)).get(SUMMARY)
    assert response.status_code == 401
    assert response.json() == {
        "detail": "Token is expired: get a new access token from auth/refresh, or log in again.",
        "errors": {},
    }


def test_a_forged_token_says_it_is_invalid(admin_user):
    response = bearer("garbage").get(SUMMARY)
    assert response.status_code == 401
    assert response.json()["detail"] == "Token is invalid."


@pytest.mark.parametrize("how", ["header", "bearer"])
def test_an_ingestion_key_on_analytics_says_keys_only_send_events(raw_api_key, how):
    client = APIClient()
    if how == "header":
        client.credentials(HTTP_X_API_KEY=raw_api_key)
    else:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_api_key}")
    response = client.get(SUMMARY)
    assert response.status_code == 401
    assert response.json() == {"detail": INGESTION_KEY_ONLY, "errors": {}}


def test_a_person_token_beside_a_key_is_the_person(admin_client, raw_api_key):
    admin_client.credentials(
        HTTP_AUTHORIZATION=admin_client._credentials["HTTP_AUTHORIZATION"], HTTP_X_API_KEY=raw_api_key
    )
    assert admin_client.get(SUMMARY).status_code == 200


def test_a_key_still_sends_events(key_client):
    assert key_client.post("/api/v1/events/track", {"feature": "f", "user_id": "u"}, format="json").status_code == 201
