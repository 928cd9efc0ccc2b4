"""The native endpoints' v2 additions: gzipped bodies, per-item `results` (with duplicates
named), unknown fields refused by name, and `account_id` on events."""

import gzip
import uuid

import orjson
import pytest
from django.db import connection
from rest_framework.test import APIClient

from telemetry.models import Account, EndUser
from telemetry.tests.helpers import BATCH, TRACK, event, events, post, stored

pytestmark = pytest.mark.django_db


def _counted(sqlite_queries):
    """The queries Django counts: PostgreSQL writes events with COPY, which it does not see."""
    return sqlite_queries if connection.vendor == "sqlite" else sqlite_queries - 1


def _gzipped(client, path, body, **headers):
    return client.generic(
        "POST", path, gzip.compress(orjson.dumps(body)), content_type="application/json", HTTP_CONTENT_ENCODING="gzip"
    )


def test_gzipped_batch_and_track_are_read(key_client, org):
    resp = _gzipped(key_client, BATCH, {"events": events(20)})
    assert resp.status_code == 200, resp.content
    assert resp.json()["accepted"] == 20
    assert _gzipped(key_client, TRACK, event()).status_code == 201
    assert stored(org) == 21


def test_gzip_bomb_answers_413(key_client, settings, org):
    settings.INGEST_MAX_BODY_BYTES = 256 * 1024
    bomb = gzip.compress(orjson.dumps({"events": [event(metadata={"pad": "x" * 8000})] * 100}))
    assert len(bomb) < settings.INGEST_MAX_BODY_BYTES
    resp = key_client.generic("POST", BATCH, bomb, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert resp.status_code == 413 and "MB" in resp.json()["detail"]
    assert stored(org) == 0


@pytest.mark.parametrize("body", [b"\x1f\x8b\x08\x00garbage", b"{}"])
def test_a_body_that_is_not_gzip_answers_400(key_client, body):
    resp = key_client.generic("POST", BATCH, body, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert resp.status_code == 400 and "gzip" in resp.json()["detail"]


def test_an_unknown_content_encoding_answers_415(key_client):
    resp = key_client.generic("POST", TRACK, b"{}", content_type="application/json", HTTP_CONTENT_ENCODING="br")
    assert resp.status_code == 415 and resp.json()["errors"] == {"body": [resp.json()["detail"]]}


def test_batch_results_say_what_became_of_each_item(key_client, org):
    stored_before = str(uuid.uuid4())
    assert post(key_client, TRACK, event(uuid=stored_before)).status_code == 201
    repeated = str(uuid.uuid4())
    items = [
        event(uuid=repeated),
        event(uuid=stored_before),
        {"feature": "x", "session_duration": -1},
        event(uuid=repeated),
        event(),
    ]
    resp = post(key_client, BATCH, {"events": items})
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["accepted"], body["duplicates"]) == (2, 2)
    assert body["results"] == [
        {"index": 0, "status": "accepted"},
        {"index": 1, "status": "duplicate"},
        {"index": 2, "status": "rejected", "field": "session_duration", "message": "Must not be negative."},
        {"index": 3, "status": "duplicate"},
        {"index": 4, "status": "accepted"},
    ]
    assert stored(org) == 3


def test_a_batch_sent_again_is_all_duplicates(key_client, org):
    items = events(5)
    post(key_client, BATCH, items)
    body = post(key_client, BATCH, items).json()
    assert body["duplicates"] == 5 and {r["status"] for r in body["results"]} == {"duplicate"}
    assert stored(org) == 5


def test_unknown_fields_are_refused_naming_them(key_client, org):
    resp = post(key_client, BATCH, {"events": [event(foo=1, Feature="x"), event()]})
    body = resp.json()
    assert resp.status_code == 200 and body["accepted"] == 1
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(0, "Feature"), (0, "foo")]
    assert "metadata" in body["errors"][0]["message"]
    resp = post(key_client, TRACK, event(foo=1))
    assert resp.status_code == 400 and resp.json()["errors"] == {
        "foo": ["Unknown field; free-form data goes in metadata."]
    }
    assert stored(org) == 1


def test_account_id_sets_the_end_users_account(key_client, org, other_org):
    Account.objects.create(organization=other_org, external_id="acme")
    resp = post(
        key_client, BATCH, {"events": [event(user_id="u1", account_id="acme"), event(user_id="u2", account_id=7)]}
    )
    assert resp.status_code == 200 and resp.json()["accepted"] == 2, resp.content
    users = {u.external_id: u for u in EndUser.objects.filter(organization=org).select_related("account")}
    assert users["u1"].account.external_id == "acme" and users["u1"].account.organization_id == org.pk
    assert users["u2"].account.external_id == "7"
    assert Account.objects.filter(organization=org).count() == 2


@pytest.mark.parametrize(
    "item, field",
    [
        ({"feature": "f", "account_id": "acme"}, "account_id"),
        (event(account_id=""), "account_id"),
        (event(account_id=["a"]), "account_id"),
        (event(account_id="a" * 201), "account_id"),
        (event(account_id="a\x00b"), "account_id"),
    ],
)
def test_bad_account_ids_are_item_errors(key_client, item, field, org):
    resp = post(key_client, BATCH, {"events": [item]})
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == field
    assert not Account.objects.exists()


def test_queued_results_name_only_the_duplicates_known_in_the_request(queue, settings, key_client, org):
    repeated = str(uuid.uuid4())
    resp = post(key_client, BATCH, {"events": [event(uuid=repeated), event(uuid=repeated), {"feature": ""}]})
    assert resp.status_code == 202
    assert [r["status"] for r in resp.json()["results"]] == ["accepted", "duplicate", "rejected"]


def test_member_events_link_their_own_profile_not_an_account(member_client, member_user, org):
    assert post(member_client, TRACK, {"feature": "search"}).status_code == 201
    profile = EndUser.objects.get(organization=org, member=member_user)
    assert profile.account is None


def test_batch_query_count_is_pinned(key_client, org, django_assert_num_queries):
    post(key_client, BATCH, {"events": events(50)})
    # Known users and features, no duplicates, no account: the features, the known end users
    # (the test's transaction never commits, so the end-user cache stays empty), the insert
    # between SAVEPOINT and RELEASE; no query for results.
    with django_assert_num_queries(_counted(5)):
        resp = post(key_client, BATCH, {"events": events(50)})
    assert resp.json()["accepted"] == 50


def test_gzip_is_not_accepted_twice(key_client):
    twice = gzip.compress(gzip.compress(orjson.dumps(event())))
    resp = APIClient().generic(
        "POST", TRACK, twice, content_type="application/json", HTTP_CONTENT_ENCODING="gzip", **key_client._credentials
    )
    assert resp.status_code == 400
