"""Person and account updates beside a native batch's events (`people`, `accounts`): what
up.js's identify and group send, through the same ingestion pass as the events."""

import uuid

import pytest

from telemetry.models import Account, EndUser, UsageEvent
from telemetry.tests.helpers import BATCH, event, post

pytestmark = pytest.mark.django_db


def test_people_and_accounts_beside_events(key_client, org):
    body = {
        "events": [event(uuid=str(uuid.uuid4()), user_id="user-42")],
        "people": [{"user_id": "user-42", "email": "ada@example.com", "age": 36, "properties": {"plan": "pro"}}],
        "accounts": [{"account_id": "acme", "name": "Acme Ltd", "properties": {"seats": 12}}],
    }
    body["people"].append({"user_id": "user-42", "account_id": "acme"})
    response = post(key_client, BATCH, body)
    assert response.status_code == 200, response.json()
    answer = response.json()
    assert [item["index"] for item in answer["results"]] == [0, 1, 2, 3]
    assert {item["status"] for item in answer["results"]} == {"accepted"}
    person = EndUser.objects.get(organization=org, external_id="user-42")
    account = Account.objects.get(organization=org, external_id="acme")
    assert (person.email, person.age, person.properties) == ("ada@example.com", 36, {"plan": "pro"})
    assert (account.name, account.properties) == ("Acme Ltd", {"seats": 12})
    assert person.account_id == account.pk
    assert UsageEvent.objects.filter(organization=org).count() == 1


def test_an_identify_alone_is_a_batch(key_client, org):
    response = post(key_client, BATCH, {"events": [], "people": [{"user_id": "u-9", "email": "u9@example.com"}]})
    assert response.status_code == 200, response.json()
    assert EndUser.objects.get(organization=org, external_id="u-9").email == "u9@example.com"
    assert not UsageEvent.objects.filter(organization=org).exists()


def test_a_bad_update_is_its_own_items_error(key_client, org):
    body = {
        "events": [event()],
        "people": [{"user_id": "u-1", "mood": "happy"}, {"user_id": "u-2", "age": -4}, "not an object"],
        "accounts": [{"name": "no id"}],
    }
    answer = post(key_client, BATCH, body).json()
    statuses = {item["index"]: (item["status"], item.get("field")) for item in answer["results"]}
    assert statuses[0] == ("accepted", None)
    assert statuses[1] == ("rejected", "mood")
    assert statuses[2][0] == "rejected" and statuses[2][1] == "age"
    assert statuses[3] == ("rejected", "people")
    assert statuses[4] == ("rejected", "account_id")
    assert not Account.objects.filter(organization=org).exists()


@pytest.mark.parametrize("field", ["people", "accounts"])
def test_updates_not_a_list_are_a_400(key_client, field):
    response = post(key_client, BATCH, {"events": [event()], field: {"user_id": "u-1"}})
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_events_and_updates_count_together_against_the_limit(key_client, settings):
    settings.INGEST_MAX_BATCH = 3
    body = {"events": [event(), event()], "people": [{"user_id": "a"}, {"user_id": "b"}]}
    assert post(key_client, BATCH, body).status_code == 413
    assert post(key_client, BATCH, {"events": [], "people": []}).status_code == 400
