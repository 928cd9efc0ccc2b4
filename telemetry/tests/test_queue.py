"""Queue mode against the real Redis (REDIS_TEST_URL): produce → consume → rows, crash
recovery through the consumer group, and the fall-back to direct writes."""

import os
import signal
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import InternalError, OperationalError, ProgrammingError

from telemetry.models import DirtyDay, EndUser, UsageEvent
from telemetry.services import stream
from telemetry.services.stream import StreamConsumer
from telemetry.tests.helpers import BATCH, TRACK, event, events, iso, post, stored
from tenants import services as tenant_services

pytestmark = [pytest.mark.django_db, pytest.mark.redis]


def _consumer(client, name, **kwargs):
    consumer = StreamConsumer(client, consumer=name, block_ms=10, **kwargs)
    consumer.ensure_group()
    return consumer


def _drain(consumer):
    while consumer.run_once(block_ms=10):
        pass


def _pending(client, settings):
    return client.xpending(settings.INGEST_STREAM, settings.INGEST_CONSUMER_GROUP)["pending"]


def test_batch_is_queued_then_consumed(queue, settings, key_client, org):
    consumer = _consumer(queue, "c1")
    items = events(300, timestamp=iso(-timedelta(days=2))) + [{"feature": ""}]
    resp = post(key_client, BATCH, items)
    assert resp.status_code == 202, resp.content
    body = resp.json()
    assert body["queued"] is True and body["accepted"] == 300 and [e["index"] for e in body["errors"]] == [300]
    assert stored(org) == 0  # nothing written by the endpoint
    assert queue.xlen(settings.INGEST_STREAM) == 1  # one entry per request
    _drain(consumer)
    assert stored(org) == body["accepted"]
    assert EndUser.objects.filter(organization=org).count() == 50
    assert DirtyDay.objects.filter(organization=org).count() == 1
    assert queue.xlen(settings.INGEST_STREAM) == 0 and _pending(queue, settings) == 0
    assert consumer.events_stored == 300


def test_track_in_queue_mode_answers_202_and_is_consumed(queue, settings, key_client, org):
    resp = post(key_client, TRACK, event(metadata={"ü": "✓"}))
    assert resp.status_code == 202
    body = resp.json()
    assert body["id"] is None and body["uuid"] and body["timestamp"]
    _drain(_consumer(queue, "c1"))
    row = UsageEvent.objects.get(organization=org)
    assert str(row.uuid) == body["uuid"] and row.metadata == {"ü": "✓"}


def test_duplicates_within_a_queued_batch_are_folded(queue, settings, key_client, org):
    items = events(5)
    body = post(key_client, BATCH, items + items[:2]).json()
    assert (body["accepted"], body["duplicates"]) == (5, 2)
    _drain(_consumer(queue, "c1"))
    assert stored(org) == body["accepted"]


def test_consumer_killed_before_reading_finishes_is_reclaimed_by_another(queue, settings, key_client, org):
    accepted = sum(post(key_client, BATCH, events(100)).json()["accepted"] for _ in range(3))
    crashed = _consumer(queue, "crashed")
    entries = crashed.read_new()  # read, then "killed": nothing written, nothing acknowledged
    assert len(entries) == 3 and _pending(queue, settings) == 3
    rescuer = _consumer(queue, "rescuer", min_idle_ms=0)
    _drain(rescuer)
    assert stored(org) == accepted == 300
    assert _pending(queue, settings) == 0 and queue.xlen(settings.INGEST_STREAM) == 0


def test_consumer_killed_after_commit_before_xack_stores_nothing_twice(queue, settings, key_client, org):
    accepted = sum(post(key_client, BATCH, events(100)).json()["accepted"] for _ in range(2))
    crashed = _consumer(queue, "crashed")
    with mock.patch.object(crashed, "ack", side_effect=SystemExit("killed")), pytest.raises(SystemExit):
        crashed.run_once()
    assert stored(org) == accepted  # committed …
    assert _pending(queue, settings) == 2  # … but never acknowledged
    rescuer = _consumer(queue, "rescuer", min_idle_ms=0)
    _drain(rescuer)
    assert rescuer.events_seen == 200 and rescuer.events_stored == 0
    assert stored(org) == accepted == 200
    assert _pending(queue, settings) == 0


def test_fresh_pending_entries_are_not_stolen(queue, settings, key_client, org):
    post(key_client, BATCH, events(10))
    busy = _consumer(queue, "busy")
    assert busy.read_new()
    other = _consumer(queue, "other", min_idle_ms=60_000)
    assert other.run_once(block_ms=10) == 0
    assert stored(org) == 0 and _pending(queue, settings) == 1


def test_consumer_restarted_under_same_name_processes_its_own_pending(queue, settings, key_client, org):
    accepted = post(key_client, BATCH, events(20)).json()["accepted"]
    assert _consumer(queue, "worker-1").read_new()
    _drain(_consumer(queue, "worker-1", min_idle_ms=60_000))
    assert stored(org) == accepted and _pending(queue, settings) == 0


def test_database_down_in_consumer_keeps_entries_pending(queue, settings, key_client, org):
    accepted = post(key_client, BATCH, events(20)).json()["accepted"]
    consumer = _consumer(queue, "c1", min_idle_ms=60_000)
    with mock.patch("telemetry.services.storage.events_insert", side_effect=OperationalError("down")):
        with pytest.raises(OperationalError):
            consumer.run_once()
    assert stored(org) == 0 and _pending(queue, settings) == 1
    consumer._own_pending_checked = False  # what the command does after a database error
    _drain(consumer)
    assert stored(org) == accepted and _pending(queue, settings) == 0


def _read_only() -> InternalError:
    """What Django raises for a write to a PostgreSQL standby or a read-only database."""
    import psycopg.errors

    error = InternalError("cannot execute INSERT in a read-only transaction")
    error.__cause__ = psycopg.errors.ReadOnlySqlTransaction(str(error))
    return error


@pytest.mark.parametrize(
    "error",
    [_read_only(), ProgrammingError('relation "telemetry_eventuuid" does not exist')],
    ids=["read-only", "table-missing"],
)
def test_a_database_refusing_every_write_in_consumer_keeps_entries_pending(queue, settings, key_client, org, error):
    """A failover's standby, writes turned off for maintenance, a consumer of a release whose
    migration has not run: the database is down for writes, not refusing the events. They
    were dead-lettered, every one (on a real PostgreSQL: 250 acknowledged events read-only,
    200 with a table renamed away)."""
    accepted = post(key_client, BATCH, events(20)).json()["accepted"]
    consumer = _consumer(queue, "c1", min_idle_ms=60_000)
    with mock.patch("telemetry.services.storage.end_users_upsert", side_effect=error):
        with pytest.raises(OperationalError):
            consumer.run_once()
    assert stored(org) == 0 and _pending(queue, settings) == 1
    assert not queue.exists(f"{settings.INGEST_STREAM}:dead")
    consumer._own_pending_checked = False  # what the command does after a database error
    _drain(consumer)
    assert stored(org) == accepted and _pending(queue, settings) == 0


def test_malformed_entry_goes_to_dead_letter_and_the_rest_is_stored(queue, settings, key_client, org):
    queue.xadd(settings.INGEST_STREAM, {"d": b"{broken"})
    accepted = post(key_client, BATCH, events(10)).json()["accepted"]
    consumer = _consumer(queue, "c1")
    _drain(consumer)
    assert stored(org) == accepted
    assert queue.xlen(f"{settings.INGEST_STREAM}:dead") == 1
    assert _pending(queue, settings) == 0


def test_an_entry_with_a_bad_uuid_is_dead_lettered(queue, settings, key_client, org):
    """Stream entries are checked again when read: the uuid goes into COPY's text format."""
    bad = {"uuid": "not-a-uuid\n", "feature_id": 1, "timestamp": iso(), "_user": None}
    queue.xadd(settings.INGEST_STREAM, {"d": stream.orjson.dumps({"org": org.pk, "events": [bad], "users": []})})
    accepted = post(key_client, BATCH, events(5)).json()["accepted"]
    _drain(_consumer(queue, "c1"))
    assert stored(org) == accepted
    assert queue.xlen(f"{settings.INGEST_STREAM}:dead") == 1


def test_entries_written_again_one_by_one_keep_their_end_users(queue, settings, key_client, org):
    """When the database refuses a batch of entries, each is written on its own; the good
    ones must still be linked to their end users."""
    from django.db import connection

    accepted = post(key_client, BATCH, events(5)).json()["accepted"]
    feature_id = stream.storage.features_resolve(org, ["search"], create=True)["search"]
    # Longer than event_type's 64 characters: PostgreSQL refuses it (SQLite stores it).
    bad = {"uuid": str(uuid.uuid4()), "feature_id": feature_id, "event_type": "x" * 100, "timestamp": iso()}
    queue.xadd(settings.INGEST_STREAM, {"d": stream.orjson.dumps({"org": org.pk, "events": [bad], "users": []})})
    _drain(_consumer(queue, "c1"))
    good = UsageEvent.objects.filter(organization=org).exclude(event_type="x" * 100)
    assert good.count() == accepted and not good.filter(end_user__isnull=True).exists()
    dead = queue.xlen(f"{settings.INGEST_STREAM}:dead")
    assert dead == (1 if connection.vendor == "postgresql" else 0)


def test_entry_of_a_deleted_organisation_is_dead_lettered(queue, settings, key_client, org, other_org):
    payload = stream.orjson.dumps({"org": 999_999, "events": [], "users": [{"external_id": "x"}]})
    queue.xadd(settings.INGEST_STREAM, {"d": payload})
    accepted = post(key_client, BATCH, events(5)).json()["accepted"]
    _drain(_consumer(queue, "c1"))
    assert stored(org) == accepted
    assert queue.xlen(f"{settings.INGEST_STREAM}:dead") == 1


def test_entries_of_an_organisation_being_deleted_are_dead_lettered(queue, settings, key_client, org, other_admin):
    """Its rows are going chunk by chunk (tenants.org_deletion): events queued before its
    keys were revoked must not be stored behind the deletion's back."""
    from tenants import org_deletion

    other_key = tenant_services.api_key_create(org=other_admin.organization, name="other")[1]
    assert post(key_client, BATCH, events(5)).status_code == 202
    org_deletion.organizations_deletion_request([org], send_task=False)
    key_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_key}")
    accepted = post(key_client, BATCH, events(3)).json()["accepted"]
    _drain(_consumer(queue, "c1"))
    assert stored(org) == 0 and stored(other_admin.organization) == accepted
    dead = queue.xrange(f"{settings.INGEST_STREAM}:dead")
    assert len(dead) == 1 and b"being deleted" in dead[0][1][b"error"]


def test_entry_whose_feature_was_deleted_while_queued_is_dead_lettered(queue, settings, key_client, org):
    from telemetry.models import Feature

    assert post(key_client, BATCH, [{"feature": "doomed", "user_id": "u1"}]).status_code == 202
    Feature.objects.filter(organization=org, key="doomed").delete()
    accepted = post(key_client, BATCH, events(5)).json()["accepted"]
    _drain(_consumer(queue, "c1"))
    # Events have no database FK constraint, so the consumer itself refuses the orphan.
    assert stored(org) == accepted
    assert not UsageEvent.objects.exclude(feature_id__in=Feature.objects.values("pk")).exists()
    dead = queue.xrange(f"{settings.INGEST_STREAM}:dead")
    assert len(dead) == 1 and b"no longer exists" in dead[0][1][b"error"]
    assert _pending(queue, settings) == 0


def test_a_deleted_feature_costs_a_queued_request_only_its_own_events(queue, settings, key_client, org):
    """The request's other events were dead-lettered with them, although acknowledged and
    stored by a direct write."""
    from telemetry.models import Feature

    batch = [{"feature": "doomed", "user_id": "u1"}, *events(4)]
    assert post(key_client, BATCH, batch).status_code == 202
    Feature.objects.filter(organization=org, key="doomed").delete()
    _drain(_consumer(queue, "c1"))
    assert stored(org) == 4 and EndUser.objects.filter(organization=org, external_id="u1").exists()
    dead = queue.xrange(f"{settings.INGEST_STREAM}:dead")
    assert len(dead) == 1 and b"no longer exists: 1 of 5 events dropped" in dead[0][1][b"error"]
    assert _pending(queue, settings) == 0


def test_redis_down_falls_back_to_direct_write(settings, key_client, org):
    settings.REDIS_URL = "redis://127.0.0.1:1/2"  # nothing listens on port 1
    settings.INGEST_MODE = "queue"
    resp = post(key_client, BATCH, events(10))
    assert resp.status_code == 200, resp.content
    assert resp.json()["accepted"] == 10 and "queued" not in resp.json()
    track = post(key_client, TRACK, event())
    assert track.status_code == 201 and track.json()["id"]
    assert stored(org) == 11


def test_a_repeated_track_call_costs_no_database_query(queue, settings, key_client, org, django_assert_num_queries):
    """Queue mode's hot path: the key and the feature come from the process caches."""
    assert post(key_client, TRACK, event(feature="search")).status_code == 202
    with django_assert_num_queries(0):
        assert post(key_client, TRACK, event(feature="search")).status_code == 202
    _drain(_consumer(queue, "c1"))
    assert stored(org) == 2


def test_a_cached_feature_deleted_meanwhile_gets_no_events_when_redis_is_down(settings, key_client, org):
    """The ids cached for queue mode are re-checked before a fall-back direct write."""
    from telemetry.models import Feature

    settings.INGEST_MODE = "queue"
    settings.REDIS_URL = "redis://127.0.0.1:1/3"  # nothing listens on port 1
    for feature in ("doomed", "kept"):
        assert post(key_client, TRACK, event(feature=feature)).status_code == 201  # direct, and now cached
    _delete_feature_elsewhere(org, "doomed")
    tenant_services.organization_update(org=org, auto_create_features=False)  # else it is created again
    resp = post(key_client, BATCH, [event(feature="doomed"), event(feature="kept")])
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["accepted"] == 1 and body["errors"] == [
        {"index": 0, "field": "feature", "message": "Unknown feature 'doomed'."}
    ]
    assert not UsageEvent.objects.exclude(feature_id__in=Feature.objects.values("pk")).exists()
    assert stored(org) == 2  # "kept" twice; "doomed"'s first event went with its feature


def _delete_feature_elsewhere(org, key):
    """Delete a feature as another process would: this process's cache is not told."""
    from django.db import connection

    from telemetry.models import Feature

    feature = Feature.objects.get(organization=org, key=key)
    UsageEvent.objects.filter(feature=feature).delete()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Feature._meta.db_table} WHERE id = %s", [feature.pk])


def test_a_cached_feature_deleted_meanwhile_is_created_again_when_redis_is_down(settings, key_client, org):
    """With auto-create on, the fall-back write resolves a stale ref anew, as direct mode would."""
    from telemetry.models import Feature

    settings.INGEST_MODE = "queue"
    settings.REDIS_URL = "redis://127.0.0.1:1/3"
    assert post(key_client, TRACK, event(feature="phoenix")).status_code == 201
    old_id = Feature.objects.get(organization=org, key="phoenix").pk
    _delete_feature_elsewhere(org, "phoenix")
    assert post(key_client, TRACK, event(feature="phoenix")).status_code == 201
    feature = Feature.objects.get(organization=org, key="phoenix")
    assert feature.pk != old_id and UsageEvent.objects.filter(feature=feature).count() == stored(org) == 1


def test_a_feature_deleted_in_this_process_is_forgotten_at_once(queue, settings, key_client, org):
    from telemetry.models import Feature

    consumer = _consumer(queue, "c1")
    assert post(key_client, TRACK, event(feature="renamed")).status_code == 202
    _drain(consumer)
    Feature.objects.filter(organization=org, key="renamed").delete()  # the admin's delete, with its event
    assert post(key_client, TRACK, event(feature="renamed")).status_code == 202  # created anew
    _drain(consumer)
    assert stored(org) == 1 and queue.xlen(f"{settings.INGEST_STREAM}:dead") == 0


def test_direct_mode_never_trusts_a_cached_feature(key_client, org):
    from telemetry.models import Feature

    assert post(key_client, TRACK, event(feature="doomed")).status_code == 201
    Feature.objects.filter(organization=org, key="doomed").delete()
    tenant_services.organization_update(org=org, auto_create_features=False)
    assert post(key_client, TRACK, event(feature="doomed")).status_code == 400
    assert stored(org) == 0  # the first event went with its feature


def test_consume_events_command_drains_and_exits_on_sigterm(queue, settings, key_client, org):
    accepted = sum(post(key_client, BATCH, events(50)).json()["accepted"] for _ in range(3))
    real_store = StreamConsumer.store

    def store_then_sigterm(self, entries):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-batch: the batch still completes
        return real_store(self, entries)

    with mock.patch.object(StreamConsumer, "store", store_then_sigterm):
        call_command("consume_events", "--count", "1", "--block-ms", "10", "--consumer", "cmd")
    assert stored(org) == 50  # one batch of one entry, acknowledged, then a clean exit
    assert _pending(queue, settings) == 0
    call_command("consume_events", "--block-ms", "10", "--max-batches", "1", "--consumer", "cmd")
    assert stored(org) == accepted
    assert queue.xlen(settings.INGEST_STREAM) == 0


def test_consume_events_once_with_nothing_to_do(queue, settings, db):
    call_command("consume_events", "--once", "--block-ms", "10")
    assert queue.exists(settings.INGEST_STREAM)  # the group (and stream) were created


def test_member_events_keep_their_account_link_through_the_queue(queue, settings, member_client, member_user, org):
    resp = post(member_client, BATCH, [{"feature": "search"}, {"feature": "export"}])
    assert resp.status_code == 202 and resp.json()["accepted"] == 2
    _drain(_consumer(queue, "c1"))
    profile = EndUser.objects.get(organization=org, member=member_user)
    assert UsageEvent.objects.filter(organization=org, end_user=profile).count() == stored(org) == 2


def test_consume_events_needs_redis(settings, db):
    from django.core.management.base import CommandError

    settings.REDIS_URL = ""
    with pytest.raises(CommandError):
        call_command("consume_events", "--once")
