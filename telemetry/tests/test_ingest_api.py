"""The track and batch endpoints in direct mode: auth, validation, dedupe, limits.

Every test checks that the events the API accepted are exactly the events stored."""

import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import orjson
import pytest
from django.db import InternalError, OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from telemetry.models import DirtyDay, EndUser, Feature, UsageEvent
from telemetry.tests.helpers import BATCH, TRACK, event, events, iso, post, stored
from tenants import services as tenant_services
from tenants.models import ApiKey

pytestmark = pytest.mark.django_db


# --- track ------------------------------------------------------------------------------


def test_track_with_bearer_key_stores_event_feature_and_end_user(key_client, org):
    resp = post(key_client, TRACK, event(email="u1@shop.example", age=33, gender="female", metadata={"k": "v"}))
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert set(body) == {"id", "uuid", "timestamp"}
    row = UsageEvent.objects.select_related("feature", "end_user").get(pk=body["id"])
    assert str(row.uuid) == body["uuid"] and row.organization_id == org.pk
    assert row.feature.key == "search" and row.metadata == {"k": "v"} and row.session_duration == 12.5
    assert (row.end_user.external_id, row.end_user.email, row.end_user.age, row.end_user.gender) == (
        "u-1",
        "u1@shop.example",
        33,
        "F",
    )
    assert stored(org) == 1


def test_track_with_x_api_key_header(raw_api_key, org):
    client = APIClient()
    resp = client.post(TRACK, event(), format="json", HTTP_X_API_KEY=raw_api_key)
    assert resp.status_code == 201
    assert stored(org) == 1


def test_track_same_uuid_twice_stores_once(key_client, org):
    body = event(uuid=str(uuid.uuid4()))
    first = post(key_client, TRACK, body)
    second = post(key_client, TRACK, body)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert stored(org) == 1


def test_track_invalid_event_answers_400_with_field_errors(key_client, org):
    resp = post(key_client, TRACK, {"feature": "x", "session_duration": -1, "timestamp": "soon"})
    assert resp.status_code == 400
    body = resp.json()
    assert set(body["errors"]) == {"session_duration", "timestamp"}
    assert stored(org) == 0


def test_track_needs_credentials(anon_client, org):
    assert post(anon_client, TRACK, event()).status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer upk_not-a-real-key-000000000000000")
    assert post(bad, TRACK, event()).status_code == 401
    assert stored(org) == 0


def test_member_sends_events_as_themselves(member_client, member_user, org):
    resp = post(member_client, TRACK, {"feature": "search", "session_duration": 3})
    assert resp.status_code == 201, resp.content
    profile = EndUser.objects.get(organization=org, member=member_user)
    assert profile.external_id == member_user.email and profile.email == member_user.email
    assert UsageEvent.objects.get(pk=resp.json()["id"]).end_user_id == profile.pk
    other = post(member_client, TRACK, {"feature": "search", "user_id": "someone-else"})
    assert other.status_code == 400 and "user_id" in other.json()["errors"]
    assert stored(org) == 1


def test_staff_choose_the_organisation_with_org_id(org):
    from conftest import client_for
    from tenants.models import User

    staff = User.objects.create_superuser(email="staff@platform.example", password="Correct-Horse-42")
    client = client_for(staff)
    resp = post(client, f"{TRACK}?org_id={org.pk}", {"feature": "search", "user_id": "u9"})
    assert resp.status_code == 201, resp.content
    assert UsageEvent.objects.get(pk=resp.json()["id"]).end_user.external_id == "u9"
    assert stored(org) == 1


# --- batch: validation --------------------------------------------------------------------

INVALID_ITEMS = [
    ({"user_id": "u"}, "feature"),
    ({"feature": ""}, "feature"),
    ({"feature": 12}, "feature"),
    ({"feature": "x" * 201}, "feature"),
    ({"feature_id": "abc"}, "feature_id"),
    ({"feature_id": True}, "feature_id"),
    ({"feature_id": 2**63}, "feature_id"),
    ({"feature_id": "99999999999999999999"}, "feature_id"),
    ({"feature_id": -3}, "feature_id"),
    ({"feature": "f", "uuid": "not-a-uuid"}, "uuid"),
    ({"feature": "f", "uuid": 123}, "uuid"),
    ({"feature": "f", "timestamp": "yesterday"}, "timestamp"),
    ({"feature": "f", "timestamp": [2024]}, "timestamp"),
    ({"feature": "f", "timestamp": 0}, "timestamp"),  # a client without a clock (QA pass 3, F2)
    ({"feature": "f", "timestamp": "1999-01-01T00:00:00Z"}, "timestamp"),
    ({"feature": "f", "timestamp": "1969-12-31T00:00:00Z"}, "timestamp"),
    ({"feature": "f", "session_duration": -0.5}, "session_duration"),
    ({"feature": "f", "session_duration": "10"}, "session_duration"),
    ({"feature": "f", "session_duration": True}, "session_duration"),
    ({"feature": "f", "event_type": "x" * 65}, "event_type"),
    ({"feature": "f", "event_type": 5}, "event_type"),
    ({"feature": "f", "session_id": "s" * 129}, "session_id"),
    ({"feature": "f", "metadata": [1, 2]}, "metadata"),
    ({"feature": "f", "metadata": "text"}, "metadata"),
    ({"feature": "f", "metadata": {"blob": "x" * (16 * 1024)}}, "metadata"),
    ({"feature": "f", "user_id": ""}, "user_id"),
    ({"feature": "f", "user_id": {"id": 1}}, "user_id"),
    ({"feature": "f", "user_id": "u" * 201}, "user_id"),
    ({"feature": "f", "user_id": "u", "email": "not-an-email"}, "email"),
    ({"feature": "f", "user_id": "u", "age": -1}, "age"),
    ({"feature": "f", "user_id": "u", "age": "30"}, "age"),
    ({"feature": "f", "user_id": "u", "gender": "X"}, "gender"),
    ({"feature": "f", "user_id": "u", "properties": "vip"}, "properties"),
    ({"feature": "f", "user_id": "u", "properties": {"p": "x" * (16 * 1024)}}, "properties"),
    ("not an object", "non_field_errors"),
    ({"feature": "f\x00"}, "feature"),
    ({"feature": "f", "event_type": "click\x00"}, "event_type"),
    ({"feature": "f", "session_id": "s\x00"}, "session_id"),
    ({"feature": "f", "user_id": "u\x00"}, "user_id"),
    ({"feature": "f", "metadata": {"a": "x\x00y"}}, "metadata"),
    ({"feature": "f", "metadata": {"k\x00": 1}}, "metadata"),
    ({"feature": "f", "user_id": "u", "properties": {"p": "\x00"}}, "properties"),
    ({"feature": "f", "user_id": "u", "email": "a\x00b@x.example"}, "email"),
]


@pytest.mark.parametrize("item,field", INVALID_ITEMS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(INVALID_ITEMS)])
def test_batch_reports_each_invalid_item_with_index_and_field(key_client, org, item, field):
    items = [event(), item, event()]
    resp = post(key_client, BATCH, items)
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, field)]
    assert body["errors"][0]["message"]
    assert stored(org) == body["accepted"]
    assert not EndUser.objects.filter(organization=org, external_id="u").exists()


def test_timestamp_more_than_24h_in_future_is_rejected_but_23h_accepted(key_client, org):
    items = [event(timestamp=iso(timedelta(hours=25))), event(timestamp=iso(timedelta(hours=23)))]
    body = post(key_client, BATCH, items).json()
    assert body["accepted"] == 1
    assert body["errors"] == [
        {"index": 0, "field": "timestamp", "message": "Must not be more than 24 hours in the future."}
    ]
    assert stored(org) == 1


def test_timestamps_in_iso_z_naive_and_epoch_forms(key_client, org):
    items = [
        event(timestamp="2025-03-01T10:00:00Z"),
        event(timestamp="2025-03-01T10:00:00"),
        event(timestamp="2025-03-01T12:00:00+02:00"),
        event(timestamp=1740823200),
        event(timestamp=1740823200000),
    ]
    body = post(key_client, BATCH, {"events": items}).json()
    assert body["accepted"] == 5, body
    stamps = {e.timestamp.isoformat() for e in UsageEvent.objects.filter(organization=org)}
    assert stamps == {"2025-03-01T10:00:00+00:00"}


def test_batch_sent_at_corrects_the_senders_clock_skew(key_client, org):
    # The sender's clock is two hours fast: its event 30 s before sending happened 30 s ago,
    # and its person update too. Without the correction the event would be refused (future).
    sent_at = timezone.now() + timedelta(hours=2)
    stamp = (sent_at - timedelta(seconds=30)).isoformat()
    body = {
        "sent_at": sent_at.isoformat(),
        "events": [event(timestamp=stamp, user_id="u-skew"), event(timestamp=stamp), event()],
        "people": [{"user_id": "u-skew", "email": "s@b.co", "timestamp": stamp}],
    }
    resp = post(key_client, BATCH, body)
    assert resp.status_code == 200 and resp.json()["accepted"] == 3, resp.content
    rows = list(UsageEvent.objects.filter(organization=org).order_by("timestamp"))
    for row in rows[:2]:  # both with the stamp, moved by the skew
        assert abs(row.timestamp - (timezone.now() - timedelta(seconds=30))) < timedelta(seconds=10)
    assert abs(rows[2].timestamp - timezone.now()) < timedelta(seconds=10)  # no timestamp: received
    person = EndUser.objects.get(organization=org, external_id="u-skew")
    assert person.email == "s@b.co" and person.last_seen < timezone.now()


@pytest.mark.parametrize("sent_at", ["yesterday", [1], {"a": 1}, True])
def test_batch_sent_at_that_is_no_time_answers_400_naming_it(key_client, org, sent_at):
    resp = post(key_client, BATCH, {"sent_at": sent_at, "events": [event()]})
    assert resp.status_code == 400, resp.content
    assert "sent_at" in resp.json()["errors"]
    assert stored(org) == 0


def test_batch_sent_at_far_off_leaves_times_out_of_range_not_a_500(key_client, org):
    body = {"sent_at": "0001-01-02T00:00:00+00:00", "events": [event(timestamp="9999-12-30T00:00:00+00:00")]}
    resp = post(key_client, BATCH, body)
    assert resp.status_code == 400 and resp.json()["errors"][0]["field"] == "timestamp", resp.content


def test_one_item_can_carry_several_errors(key_client, org):
    resp = post(key_client, BATCH, [{"feature_id": "x", "session_duration": -1, "metadata": 3}])
    assert resp.status_code == 400
    body = resp.json()
    assert {e["field"] for e in body["errors"]} == {"feature_id", "session_duration", "metadata"}
    assert body["accepted"] == 0 and body["detail"]
    assert stored(org) == 0


def test_batch_with_only_invalid_items_is_400_and_stores_nothing(key_client, org):
    resp = post(key_client, BATCH, [{"feature": ""}, {"session_duration": -1}])
    assert resp.status_code == 400
    assert [e["index"] for e in resp.json()["errors"]] == [0, 1, 1]
    assert stored(org) == 0
    assert not Feature.objects.filter(organization=org).exists()


@pytest.mark.parametrize(
    "raw,status",
    [
        (b"{not json", 400),
        (b"", 400),
        (b'"a string"', 400),
        (b"[]", 400),
        (b'{"events": {}}', 400),
    ],
)
def test_batch_body_shape_errors(key_client, org, raw, status):
    resp = key_client.generic("POST", BATCH, raw, content_type="application/json")
    assert resp.status_code == status
    assert resp.json()["detail"]
    assert stored(org) == 0


def test_batch_over_1000_events_is_413(key_client, org):
    resp = post(key_client, BATCH, events(1001))
    assert resp.status_code == 413
    assert stored(org) == 0


def test_body_over_5_mb_is_413(key_client, org):
    blob = "x" * 6000
    items = [event(metadata={"b": blob}) for _ in range(900)]
    raw = orjson.dumps(items)
    assert len(raw) > 5 * 1024 * 1024
    resp = key_client.generic("POST", BATCH, raw, content_type="application/json")
    assert resp.status_code == 413
    assert stored(org) == 0


# --- batch: features, org_id, tenancy --------------------------------------------------------


def test_feature_by_id_key_or_name(key_client, org):
    feature = Feature.objects.create(organization=org, key="checkout", name="Checkout Flow")
    items = [
        event(feature=None, feature_id=feature.pk),
        event(feature=None, feature_id=str(feature.pk)),
        event(feature="checkout"),
        event(feature="Checkout Flow"),
    ]
    body = post(key_client, BATCH, items).json()
    assert body["accepted"] == 4, body
    assert set(UsageEvent.objects.filter(organization=org).values_list("feature_id", flat=True)) == {feature.pk}


def test_feature_of_another_org_is_unknown_and_never_attached(key_client, org, other_org):
    foreign = Feature.objects.create(organization=other_org, key="secret", name="Secret")
    resp = post(key_client, BATCH, [event(feature=None, feature_id=foreign.pk), event()])
    body = resp.json()
    assert resp.status_code == 200
    assert body["errors"] == [{"index": 0, "field": "feature_id", "message": f"Unknown feature {foreign.pk}."}]
    assert not UsageEvent.objects.filter(feature=foreign).exists()
    assert stored(org) == body["accepted"] == 1
    track = post(key_client, TRACK, event(feature=None, feature_id=foreign.pk))
    assert track.status_code == 400 and "Unknown feature" in track.json()["detail"]
    assert stored(other_org) == 0


def test_unknown_feature_is_an_error_when_auto_create_is_off(key_client, org):
    org.auto_create_features = False
    org.save(update_fields=["auto_create_features"])
    Feature.objects.create(organization=org, key="known", name="Known")
    body = post(key_client, BATCH, [event(feature="known"), event(feature="brand-new")]).json()
    assert body["accepted"] == 1
    assert body["errors"] == [{"index": 1, "field": "feature", "message": "Unknown feature 'brand-new'."}]
    assert not Feature.objects.filter(organization=org, key="brand-new").exists()
    assert stored(org) == 1


def test_foreign_org_id_is_403_for_track_and_batch(key_client, org, other_org):
    assert post(key_client, TRACK, event(org_id=other_org.pk)).status_code == 403
    resp = post(key_client, BATCH, [event(), event(org_id=str(other_org.pk))])
    assert resp.status_code == 403
    assert "org_id" in resp.json()["errors"]
    assert stored(org) == 0 and stored(other_org) == 0
    ok = post(key_client, BATCH, [event(org_id=org.pk), event(org_id=str(org.pk))])
    assert ok.status_code == 200 and ok.json()["accepted"] == 2
    assert stored(org) == 2


def test_unicode_everywhere(key_client, org):
    items = [
        event(
            feature="検索 ✓ Suche",
            user_id="ユーザー-1",
            session_id="séance-α",
            event_type="clic-ü",
            metadata={"emoji": "🚀", "text": "naïve façade", "nested": {"ключ": ["значение"]}},
            properties={"город": "Москва"},
        )
    ]
    body = post(key_client, BATCH, items).json()
    assert body["accepted"] == 1, body
    row = UsageEvent.objects.select_related("feature", "end_user").get(organization=org)
    assert row.feature.name == "検索 ✓ Suche" and row.feature.key == "検索-suche"
    assert row.end_user.external_id == "ユーザー-1" and row.end_user.properties == {"город": "Москва"}
    assert row.metadata["nested"] == {"ключ": ["значение"]} and row.metadata["emoji"] == "🚀"
    assert (row.session_id, row.event_type) == ("séance-α", "clic-ü")


def test_backslash_u0000_as_text_is_not_a_nul(key_client, org):
    body = post(key_client, BATCH, [event(metadata={"path": "C:\\u0000\\dir", "re": "\\\\u0000"})]).json()
    assert body["accepted"] == 1, body
    assert UsageEvent.objects.get(organization=org).metadata == {"path": "C:\\u0000\\dir", "re": "\\\\u0000"}


def test_metadata_up_to_16_kb_is_kept_whole(key_client, org):
    blob = "é" * 8000  # 16,000 bytes of UTF-8, plus the JSON around it: just under 16 KB
    body = post(key_client, BATCH, [event(metadata={"b": blob}), event(metadata={"b": blob + "éé" * 100})]).json()
    assert body["accepted"] == 1
    assert body["errors"][0]["index"] == 1 and body["errors"][0]["field"] == "metadata"
    assert UsageEvent.objects.get(organization=org).metadata == {"b": blob}


# --- duplicates -------------------------------------------------------------------------------


def test_duplicates_within_one_batch(key_client, org):
    dup = str(uuid.uuid4())
    items = [event(uuid=dup), event(uuid=dup), event(), event(uuid=dup.upper())]
    body = post(key_client, BATCH, items).json()
    assert (body["accepted"], body["duplicates"], body["errors"]) == (2, 2, [])
    assert stored(org) == 2


def test_reposting_a_batch_stores_nothing_twice(key_client, org):
    items = events(50)
    first = post(key_client, BATCH, items).json()
    second = post(key_client, BATCH, items).json()
    assert (first["accepted"], first["duplicates"]) == (50, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 50)
    assert stored(org) == 50
    assert post(key_client, BATCH, items).status_code == 200


def test_same_uuid_in_two_orgs_is_two_events(key_client, org, other_org, other_admin):
    _, other_raw = tenant_services.api_key_create(org=other_org, name="k", created_by=other_admin)
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {other_raw}")
    items = events(3)
    assert post(key_client, BATCH, items).json()["accepted"] == 3
    assert post(other, BATCH, items).json()["accepted"] == 3
    assert stored(org) == stored(other_org) == 3


# --- keys, throttling --------------------------------------------------------------------------


def test_key_revoked_mid_stream(key_client, api_key_pair, org):
    accepted = post(key_client, BATCH, events(10)).json()["accepted"]
    tenant_services.api_key_revoke(org=org, key_id=api_key_pair[0].pk)
    resp = post(key_client, BATCH, events(10))
    assert resp.status_code == 401
    assert stored(org) == accepted == 10


def test_last_used_at_is_touched_at_most_once_a_minute(key_client, api_key_pair, org):
    key = api_key_pair[0]
    post(key_client, TRACK, event())
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    post(key_client, TRACK, event())
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(seconds=61))
    tenant_services.api_key_cache.clear()  # as when the process's cached entry expires
    post(key_client, TRACK, event())
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first
    assert stored(org) == 3


def test_throttle_per_key_answers_429_with_retry_after(settings, key_client, org, admin_user, one_rate_window):
    settings.INGEST_THROTTLE_RATE = "2/min"
    assert post(key_client, TRACK, event()).status_code == 201
    assert post(key_client, BATCH, events(3)).status_code == 200
    resp = post(key_client, TRACK, event())
    assert resp.status_code == 429
    assert 1 <= int(resp["Retry-After"]) <= 60
    assert resp.json()["detail"]
    _, raw = tenant_services.api_key_create(org=org, name="second", created_by=admin_user)
    second = APIClient()
    second.credentials(HTTP_X_API_KEY=raw)
    assert post(second, TRACK, event()).status_code == 201
    assert stored(org) == 1 + 3 + 1


def _redis_cache(location):
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }


@pytest.mark.redis
def test_throttle_counts_on_the_real_redis(settings, redis_url, key_client, org, one_rate_window):
    import redis

    settings.CACHES = _redis_cache(redis_url)
    settings.INGEST_THROTTLE_RATE = "3/min"
    assert [post(key_client, TRACK, event()).status_code for _ in range(4)] == [201, 201, 201, 429]
    client = redis.Redis.from_url(redis_url)
    [counter] = client.keys("*throttle:ingest:*")
    assert int(client.get(counter)) == 4
    assert 0 < client.ttl(counter) <= 61  # the window's counter expires with it
    assert stored(org) == 3


def test_throttle_lets_events_through_when_its_redis_is_unreachable(settings, key_client, org, caplog):
    settings.CACHES = _redis_cache("redis://127.0.0.1:1/0")  # nothing listens on port 1
    settings.INGEST_THROTTLE_RATE = "1/min"
    assert [post(key_client, TRACK, event()).status_code for _ in range(3)] == [201, 201, 201]
    assert caplog.text.count("throttle off (events pass uncounted): Redis unreachable, not tried again for 5 s") == 1
    assert stored(org) == 3


# --- late data, storage failures, query counts ------------------------------------------------------


def test_late_event_marks_its_day_dirty(key_client, org):
    today = timezone.now().date()
    body = post(key_client, BATCH, [event(timestamp=iso(-timedelta(days=3))), event()]).json()
    assert body["accepted"] == 2
    assert list(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == [today - timedelta(days=3)]
    assert stored(org) == 2


def test_events_of_today_mark_nothing(key_client, org):
    post(key_client, BATCH, [event()])
    assert not DirtyDay.objects.exists()


@pytest.mark.parametrize("target", ["events_insert", "end_users_upsert", "features_resolve"])
def test_database_down_answers_503_with_retry_after(key_client, org, target):
    with mock.patch(f"telemetry.services.storage.{target}", side_effect=OperationalError("connection refused")):
        resp = post(key_client, BATCH, events(5))
        track = post(key_client, TRACK, event())
    assert resp.status_code == 503 and track.status_code == 503
    assert resp["Retry-After"] and resp.json()["detail"]
    assert stored(org) == 0


def test_database_unreachable_during_authentication_is_503(key_client, org):
    with mock.patch("tenants.services.api_key_authenticate", side_effect=OperationalError("down")):
        resp = post(key_client, TRACK, event())
    assert resp.status_code == 503 and resp["Retry-After"]


def test_a_read_only_database_answers_503_not_500(key_client, org):
    """A write to a standby (a failover not yet seen) or to a database in read-only
    maintenance is an outage: 503 with Retry-After, so SDKs retry. The API key's
    `last_used_at` touch met it first and answered 500."""
    import psycopg.errors

    error = InternalError("cannot execute UPDATE in a read-only transaction")
    error.__cause__ = psycopg.errors.ReadOnlySqlTransaction(str(error))
    with mock.patch("django.db.models.QuerySet.update", side_effect=error):
        resp = post(key_client, TRACK, event())
    assert resp.status_code == 503 and resp["Retry-After"], resp.content
    assert stored(org) == 0


def _batch_queries(client, n, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        resp = post(client, BATCH, events(n, feature=f"feature-{n}"))
    assert resp.status_code == 200 and resp.json()["accepted"] == n
    return len(ctx.captured_queries)


def test_query_count_of_a_1000_event_batch_is_constant(key_client, org, django_assert_max_num_queries):
    post(key_client, TRACK, event())  # the key's first use also touches last_used_at
    small = _batch_queries(key_client, 10, django_assert_max_num_queries)
    # key, features (+ insert and re-read: the feature is new), end users (read + upsert),
    # savepoint, events (PostgreSQL: one COPY; SQLite: one executemany), dirty days, release.
    with django_assert_max_num_queries(10):
        resp = post(key_client, BATCH, events(1000, timestamp=iso(-timedelta(days=1))))
    assert resp.json()["accepted"] == 1000
    big = _batch_queries(key_client, 1000, django_assert_max_num_queries)
    assert big == small  # the same statements whatever the number of events
    assert stored(org) == 2011


@pytest.mark.parametrize(
    "data",
    [
        {"id": None, "uuid": uuid.uuid4(), "timestamp": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)},
        {"id": 5, "uuid": "abc", "timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},
        {"detail": "ünïcode ✓", "errors": [{"index": 0, "field": "x", "message": "y"}], "n": 1.5},
    ],
)
def test_ingestion_answers_render_exactly_like_the_rest_of_the_api(data):
    from rest_framework.renderers import JSONRenderer

    from telemetry.views_api import _OrjsonRenderer

    assert _OrjsonRenderer().render(data) == JSONRenderer().render(data)


def test_ingestion_answers_json_whatever_the_accept_header(key_client, org):
    resp = key_client.post(TRACK, event(), format="json", HTTP_ACCEPT="text/html")
    assert resp.status_code == 201 and resp["Content-Type"] == "application/json"
    assert stored(org) == 1


@pytest.mark.parametrize("bad", ["123e4567-e89b-12d3-a456-426614174000\n", "123e4567-e89b-12d3-a456-426614174000\t"])
def test_a_uuid_with_trailing_whitespace_is_refused_per_item(key_client, org, bad):
    resp = post(key_client, BATCH, [event(uuid=bad), event()])
    assert resp.status_code == 200, resp.content
    assert resp.json()["errors"] == [{"index": 0, "field": "uuid", "message": "Must be a UUID string."}]
    assert stored(org) == 1
