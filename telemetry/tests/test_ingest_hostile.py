"""Hostile bodies on the ingestion endpoints. Whatever one item holds (digits that are not
ASCII, times `astimezone` cannot reach, metadata nested hundreds of levels, absurd numbers),
it is that item's error and the rest of the batch is stored: a 500 made SDKs retry the
whole batch forever. Only a body that cannot be parsed at all is refused as a whole, with
the error shape and never a trace."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from core.parsers import MAX_JSON_DEPTH
from telemetry.models import EndUser, UsageEvent
from telemetry.tests.helpers import BATCH, TRACK, event, events, post, stored
from tenants import services as tenant_services

pytestmark = pytest.mark.django_db


def nested(depth):
    """A JSON object `depth` levels deep, as text: the encoders refuse such depths themselves."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def post_raw(client, path, raw, content_type="application/json"):
    return client.generic("POST", path, raw.encode() if isinstance(raw, str) else raw, content_type=content_type)


def assert_error_shape(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert {"detail", "errors"} <= set(body)
    assert "Traceback" not in response.content.decode()
    return body


# One bad item each: (raw JSON of the item, the field its error names).
HOSTILE_ITEMS = [
    ('{"feature_id": "²"}', "feature_id"),
    ('{"feature_id": "١٢"}', "feature_id"),
    ('{"feature_id": "1_2"}', "feature_id"),
    ('{"feature_id": "99999999999999999999999"}', "feature_id"),
    ('{"feature_id": 99999999999999999999999}', "feature_id"),
    ('{"feature": "f", "timestamp": "0001-01-01T00:00:00+01:00"}', "timestamp"),
    ('{"feature": "f", "timestamp": "0001-01-01T00:00:00"}', "timestamp"),
    ('{"feature": "f", "timestamp": "9999-12-31T23:00:00-01:00"}', "timestamp"),
    ('{"feature": "f", "timestamp": -1e300}', "timestamp"),
    ('{"feature": "f", "timestamp": 1e300}', "timestamp"),
    ('{"feature": "f", "session_duration": 1e308}', "session_duration"),
    (f'{{"feature": "f", "metadata": {nested(MAX_JSON_DEPTH + 1)}}}', "metadata"),
    (f'{{"feature": "f", "metadata": {nested(254)}}}', "metadata"),
    (f'{{"feature": "f", "metadata": {nested(300)}}}', "metadata"),
    (f'{{"feature": "f", "metadata": {nested(1000)}}}', "metadata"),
    (f'{{"feature": "f", "metadata": {{"list": [{nested(40)}]}}}}', "metadata"),
    (f'{{"feature": "f", "user_id": "u", "properties": {nested(500)}}}', "properties"),
    ('{"feature": "f", "metadata": {"k": "\\u0000"}}', "metadata"),
    ('{"feature": "\\u0000"}', "feature"),
    ('{"feature": "f", "uuid": "not-a-uuid"}', "uuid"),
    ('"a string"', "non_field_errors"),
    ("[[[[[[[[]]]]]]]]", "non_field_errors"),
]


@pytest.mark.parametrize(("raw", "field"), HOSTILE_ITEMS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(HOSTILE_ITEMS)])
def test_a_hostile_item_is_its_own_error_and_the_rest_is_stored(key_client, org, raw, field):
    good = '{"feature": "search", "user_id": "u-1"}'
    response = post_raw(key_client, BATCH, f'{{"events": [{good}, {raw}, {good}]}}')
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 2
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, field)]
    assert stored(org) == 2
    assert not EndUser.objects.filter(organization=org, external_id="u").exists()


OBJECT_ITEMS = [(raw, field) for raw, field in HOSTILE_ITEMS if field != "non_field_errors"]


@pytest.mark.parametrize(("raw", "field"), OBJECT_ITEMS, ids=[f"{i}-{f}" for i, (_, f) in enumerate(OBJECT_ITEMS)])
def test_track_answers_400_naming_the_field(key_client, org, raw, field):
    body = assert_error_shape(post_raw(key_client, TRACK, raw), 400)
    assert field in body["errors"]
    assert stored(org) == 0


def test_metadata_exactly_at_the_depth_limit_is_kept(key_client, org):
    response = post_raw(key_client, TRACK, f'{{"feature": "f", "metadata": {nested(MAX_JSON_DEPTH)}}}')
    assert response.status_code == 201, response.content
    assert stored(org) == 1


def test_a_1000_event_batch_with_every_hostile_item_stores_the_rest(key_client, org):
    """The issue's case: one such item used to fail the whole batch with a 500."""
    good = [
        f'{{"uuid": "{uuid.uuid4()}", "feature": "search", "user_id": "u-{i}"}}'
        for i in range(1000 - len(HOSTILE_ITEMS) - 1)
    ]
    repeated = good[0]  # a duplicate uuid in the same batch is counted, not stored twice
    items = good[:500] + [raw for raw, _ in HOSTILE_ITEMS] + [repeated] + good[500:]
    assert len(items) == 1000
    response = post_raw(key_client, BATCH, "[" + ",".join(items) + "]")
    assert response.status_code == 200, response.content[:500]
    body = response.json()
    assert body["accepted"] == len(good) and body["duplicates"] == 1
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (500 + i, field) for i, (_, field) in enumerate(HOSTILE_ITEMS)
    ]
    assert stored(org) == len(good)


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"events": [' + nested(1100).encode() + b"]}", "application/json"),  # past any parser's depth
        (b'{"feature": "\\ud800"}', "application/json"),  # a lone surrogate: text no database can store
        (b'{"feature": "\\udfff x"}', "application/json"),
        (b'{"feature": "f"', "application/json"),
        (b'{"feature": "f"} trailing', "application/json"),
        (b"\x00\x00\x00", "application/json"),
        (b'{"feature": "\xff\xfe"}', "application/json"),
        (b"feature=search&user_id=u", "application/x-www-form-urlencoded"),
        (b"", "application/json"),
        (b"NaN", "application/json"),
        (b'{"feature": Infinity}', "application/json"),
    ],
)
@pytest.mark.parametrize("path", [TRACK, BATCH])
def test_a_body_that_cannot_be_parsed_is_refused_whole(key_client, org, path, raw, content_type):
    body = assert_error_shape(post_raw(key_client, path, raw, content_type), 400)
    assert "body" in body["errors"]
    assert stored(org) == 0


def test_json_sent_as_text_plain_is_read(key_client, org):
    # sendBeacon posts text/plain; the endpoints read JSON whatever the content type says.
    assert post_raw(key_client, TRACK, '{"feature": "search"}', "text/plain").status_code == 201
    assert stored(org) == 1


def test_an_org_id_nested_deep_is_403_without_reading_it_as_text(key_client, org):
    deep_list = "[" * 1020 + "]" * 1020  # as deep as the parser takes: str() of it would recurse past the limit
    body = assert_error_shape(post_raw(key_client, BATCH, f'[{{"feature": "f", "org_id": {deep_list}}}]'), 403)
    assert "org_id" in body["errors"]
    assert stored(org) == 0


def test_expired_token_and_revoked_key_are_401(key_client, api_key_pair, org, member_user):
    expired = AccessToken.for_user(member_user)
    expired.set_exp(from_time=timezone.now() - timedelta(hours=1), lifetime=timedelta(minutes=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert_error_shape(post(client, TRACK, event()), 401)
    tenant_services.api_key_revoke(org=org, key_id=api_key_pair[0].pk)
    assert_error_shape(post(key_client, BATCH, events(3)), 401)
    garbage = APIClient()
    garbage.credentials(HTTP_AUTHORIZATION="Bearer upk_\u00e9\u00e9")
    assert_error_shape(post(garbage, TRACK, event()), 401)
    assert stored(org) == 0


def test_only_the_valid_events_are_in_the_database(key_client, org):
    deep = f'{{"feature": "f", "metadata": {nested(40)}}}'
    post_raw(key_client, BATCH, f'[{{"feature": "search"}}, {{"feature_id": "²"}}, {deep}]')
    assert list(UsageEvent.objects.filter(organization=org).values_list("feature__key", flat=True)) == ["search"]
