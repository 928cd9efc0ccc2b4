"""Monthly partitions of the events table (PostgreSQL), the raw-event retention and the uuid
dedupe across partitions and over the SDKs' 7-day retry horizon. The partition tests skip on
SQLite, which has no partitions; retention and the horizon are checked on both. That the
rollups outlive the raw events is checked in analytics/tests/test_raw_event_retention.py."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from core.testing import settings_load
from telemetry import tasks
from telemetry.models import DirtyDay, EventUuid, UsageEvent
from telemetry.services import partitions
from telemetry.services.partitions import month_start, months_add, partition_name
from telemetry.tests.helpers import BATCH, event, post, stored
from usage_platform.celery import app

pytestmark = pytest.mark.django_db

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only (SQLite keeps one table)"
)


def _month(offset: int) -> datetime:
    """Noon on the 15th of the month `offset` months from the current one (UTC)."""
    month = months_add(month_start(timezone.now()), offset)
    return datetime(month.year, month.month, 15, 12, tzinfo=UTC)


def _send(client, *items):
    resp = post(client, BATCH, {"events": list(items)})
    assert resp.status_code in (200, 201, 202), resp.content
    return resp.json()


def _partition_of(event_uuid: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM telemetry_usageevent WHERE uuid = %s", [event_uuid])
        return cursor.fetchone()[0]


@postgres_only
def test_the_events_table_is_partitioned_by_month_with_the_coming_months_ready():
    assert partitions.partitioned()
    months = partitions.event_partitions()
    current = month_start(timezone.now())
    assert all(months_add(current, n) in months for n in range(-1, 4))
    assert months[current] == partition_name(current) == f"telemetry_usageevent_p{current:%Y_%m}"


@postgres_only
def test_events_land_in_the_partition_of_their_month(key_client, org):
    now_uuid, earlier_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    result = _send(
        key_client,
        event(uuid=now_uuid, timestamp=timezone.now().isoformat()),
        event(uuid=earlier_uuid, timestamp=_month(-1).isoformat()),
    )
    assert result["accepted"] == 2
    assert _partition_of(now_uuid) == partition_name(month_start(timezone.now()))
    assert _partition_of(earlier_uuid) == partition_name(month_start(_month(-1)))
    # The ORM reads the partitioned table as it read the plain one.
    assert set(UsageEvent.objects.filter(organization=org).values_list("uuid", flat=True)) == {
        uuid.UUID(now_uuid),
        uuid.UUID(earlier_uuid),
    }


@postgres_only
def test_a_late_event_into_an_old_month_waits_in_the_default_partition_for_its_own(key_client, org):
    old = _month(-7)
    assert month_start(old) not in partitions.event_partitions()
    late = str(uuid.uuid4())
    result = _send(key_client, event(uuid=late, timestamp=old.isoformat()), event(timestamp=timezone.now().isoformat()))
    assert result["accepted"] == 2
    assert _partition_of(late) == partitions.DEFAULT
    assert DirtyDay.objects.filter(organization=org, date=old.date()).exists()
    # The nightly job gives the month its partition and moves the row there.
    assert partition_name(month_start(old)) in tasks.partitions_prepare.apply().get()
    assert _partition_of(late) == partition_name(month_start(old))
    # Another late event for that month goes straight in.
    later = str(uuid.uuid4())
    assert _send(key_client, event(uuid=later, timestamp=(old + timedelta(days=3)).isoformat()))["accepted"] == 1
    assert _partition_of(later) == partition_name(month_start(old))
    assert stored(org) == 3


@postgres_only
def test_a_retry_whose_timestamp_crossed_a_month_boundary_is_skipped(key_client, org):
    boundary = datetime.combine(month_start(timezone.now()), datetime.min.time(), tzinfo=UTC)
    event_uuid = str(uuid.uuid4())
    first = _send(key_client, event(uuid=event_uuid, timestamp=(boundary - timedelta(milliseconds=200)).isoformat()))
    # The retry's clock-skew correction moved it into the next month, another partition.
    retry = _send(key_client, event(uuid=event_uuid, timestamp=(boundary + timedelta(milliseconds=300)).isoformat()))
    assert (first["accepted"], retry["accepted"], retry["duplicates"]) == (1, 0, 1)
    assert stored(org) == 1
    assert _partition_of(event_uuid) == partition_name(month_start(boundary - timedelta(days=1)))


@postgres_only
def test_a_retry_eight_days_later_is_skipped_and_an_exact_one_after_the_dedupe_window_too(key_client, org, settings):
    from telemetry.services import storage

    event_uuid = uuid.uuid4()
    assert _send(key_client, event())["accepted"] == 1
    feature_id = UsageEvent.objects.get(organization=org).feature_id
    sent_at = timezone.now() - timedelta(days=8)
    row = {"uuid": event_uuid, "organization_id": org.pk, "feature_id": feature_id, "timestamp": sent_at}
    assert storage.events_insert(rows=[{**row, "received_at": sent_at}]) == 1
    # 8 days later, a retry with a corrected timestamp: still recognised by its uuid.
    retry = _send(key_client, event(uuid=str(event_uuid), timestamp=(sent_at + timedelta(seconds=2)).isoformat()))
    assert (retry["accepted"], retry["duplicates"]) == (0, 1)

    settings.EVENT_DEDUPE_DAYS = 7
    assert tasks.event_uuids_expire.apply().get() == 1
    assert not EventUuid.objects.filter(organization=org, uuid=event_uuid).exists()
    # Past the window, the exact retry (same timestamp) is still skipped by the table's own key.
    assert storage.events_insert(rows=[row]) == 0
    assert UsageEvent.objects.filter(organization=org, uuid=event_uuid).count() == 1


@postgres_only
def test_a_retry_of_an_erased_event_is_a_duplicate_with_an_answer(key_client, org):
    """The dedupe table outlives an event erased with its end user: a retry of it is skipped,
    and said so (the track endpoint answered 200 with an empty body, the batch "accepted")."""
    from telemetry.models import EndUser
    from telemetry.services import erasure
    from telemetry.tests.helpers import TRACK

    event_uuid = str(uuid.uuid4())
    sent = event(uuid=event_uuid, user_id="to-erase")
    assert post(key_client, TRACK, sent).status_code == 201
    erasure.end_users_erase(EndUser.objects.filter(organization=org, external_id="to-erase"))
    assert stored(org) == 0

    track = post(key_client, TRACK, sent)
    assert track.status_code == 200
    assert (track.json()["id"], track.json()["uuid"]) == (None, event_uuid)
    batch = _send(key_client, sent)
    assert (batch["accepted"], batch["duplicates"], batch["results"][0]["status"]) == (0, 1, "duplicate")
    assert stored(org) == 0


@postgres_only
def test_a_uuid_repeated_in_one_insert_keeps_its_first_event(org):
    from telemetry.services import storage

    feature = org.features.create(key="search", name="Search")
    event_uuid = uuid.uuid4()
    rows = [
        {
            "uuid": event_uuid,
            "organization_id": org.pk,
            "feature_id": feature.pk,
            "timestamp": _month(0),
            "event_type": t,
        }
        for t in ("first", "second")
    ]
    assert storage.events_insert(rows=rows) == 1
    assert UsageEvent.objects.get(uuid=event_uuid).event_type == "first"


@postgres_only
def test_the_beat_job_creates_the_coming_months_partitions(settings):
    ahead = months_add(month_start(timezone.now()), 3)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{partition_name(ahead)}"')
    settings.EVENT_PARTITIONS_AHEAD = 5
    created = tasks.partitions_prepare.apply().get()
    assert created == [partition_name(months_add(month_start(timezone.now()), n)) for n in (3, 4, 5)]
    assert tasks.partitions_prepare.apply().get() == []
    entry = app.conf.beat_schedule["event-partitions-prepare"]
    assert entry["task"] == "telemetry.partitions_prepare" in app.tasks
    assert {"telemetry.raw_events_expire", "telemetry.event_uuids_expire"} <= set(app.tasks)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_late_event_of_a_month_being_given_its_partition_is_moved_there_too(org, monkeypatch):
    # Seen: an event of that month inserted between the move of its rows and the ATTACH went
    # into the default partition, and the ATTACH then failed ("updated partition constraint
    # for default partition … would be violated by some row"), undoing every partition of the
    # nightly run (the coming months' too) or ending an import with a traceback. Expected:
    # the month is moved again, its late event along, and attached.
    feature = org.features.create(key="search", name="Search")
    old = _month(-11)
    name = partition_name(month_start(old))
    UsageEvent.objects.create(organization=org, feature=feature, timestamp=old)
    real_move, beside = partitions._rows_move, []

    def late_event() -> None:
        try:
            UsageEvent.objects.create(organization_id=org.pk, feature_id=feature.pk, timestamp=old + timedelta(days=1))
        finally:
            connection.close()  # this thread's own connection

    def move_while_an_event_comes_in(*args) -> None:
        real_move(*args)
        if not beside:  # once, between the first move and its ATTACH
            beside.append(threading.Thread(target=late_event))
            beside[0].start()
            beside[0].join(timeout=10)

    monkeypatch.setattr(partitions, "_rows_move", move_while_an_event_comes_in)
    try:
        assert partitions.event_partitions_ensure(months=[old]) == [name]
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT count(*) FROM "{name}"')
            assert cursor.fetchone()[0] == 2
            cursor.execute(f'SELECT count(*) FROM "{partitions.DEFAULT}"')
            assert cursor.fetchone()[0] == 0
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE IF EXISTS "{name}"')


def test_events_older_than_the_retention_are_refused_with_a_clear_error(key_client, org, settings):
    settings.RAW_EVENT_RETENTION_MONTHS = 2
    resp = post(key_client, BATCH, {"events": [event(timestamp=_month(-2).isoformat()), event()]})
    body = resp.json()
    assert body["accepted"] == 1
    [error] = body["errors"]
    horizon = datetime.combine(months_add(month_start(timezone.now()), -1), datetime.min.time())
    assert error["field"] == "timestamp" and f"before {horizon:%Y-%m-%d}" in error["message"]
    assert "RAW_EVENT_RETENTION_MONTHS" in error["message"]


@pytest.mark.parametrize("months", ["1", "-2"])
def test_a_retention_that_would_expire_yesterday_at_midnight_is_refused(monkeypatch, months):
    # Seen with RAW_EVENT_RETENTION_MONTHS=1: from midnight on the 1st the horizon is that
    # day, so the nightly rollup of the month's last day (00:15) was skipped as expired, and
    # its events after the last hourly rollup never reached the figures. Expected: refused.
    with pytest.raises(ImproperlyConfigured, match="set 0 .* or 2 or more"):
        settings_load(monkeypatch, DEBUG="true", RAW_EVENT_RETENTION_MONTHS=months)
    assert settings_load(monkeypatch, DEBUG="true", RAW_EVENT_RETENTION_MONTHS="2").RAW_EVENT_RETENTION_MONTHS == 2


def test_retention_off_keeps_everything(key_client, org):
    assert _send(key_client, event(timestamp=_month(-30).isoformat()))["accepted"] == 1
    result = partitions.raw_events_expire()
    assert result == {"horizon": None, "dropped": [], "rows_deleted": 0}
    assert stored(org) == 1


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite deletes rows; PostgreSQL drops partitions")
def test_retention_on_sqlite_deletes_the_expired_rows_and_their_marks(key_client, org, settings):
    old, kept = _month(-5), _month(-1)
    assert _send(key_client, event(timestamp=old.isoformat()), event(timestamp=kept.isoformat()))["accepted"] == 2
    settings.RAW_EVENT_RETENTION_MONTHS = 3
    result = partitions.raw_events_expire()
    assert result["rows_deleted"] == 1 and result["dropped"] == []
    assert list(UsageEvent.objects.values_list("timestamp", flat=True)) == [kept]
    assert not DirtyDay.objects.filter(date=old.date()).exists()
    assert DirtyDay.objects.filter(date=kept.date()).exists()


def test_events_upkeep_command_runs_the_three_jobs(capsys, settings):
    settings.RAW_EVENT_RETENTION_MONTHS = 0
    call_command("events_upkeep")
    out = capsys.readouterr().out
    assert "Partitions created:" in out and "raw events are kept" in out and "expired uuids forgotten" in out


def _partitioning_migration():
    """(this migration's name, the telemetry migration before it): found by name, so the
    test follows a renumbering."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    [name] = [n for app, n in loader.disk_migrations if app == "telemetry" and "usageevent_partitioned" in n]
    [before] = [n for app, n in loader.disk_migrations[("telemetry", name)].dependencies if app == "telemetry"]
    return name, before


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_existing_rows_into_their_partitions(org):
    name, before = _partitioning_migration()
    # Created with today's columns, before the migrations that added some are unapplied.
    feature = org.features.create(key="search", name="Search")
    call_command("migrate", "telemetry", before, verbosity=0)
    try:
        assert not partitions.partitioned()
        old_received = timezone.now() - timedelta(days=30)
        times = [_month(-14), _month(-1), _month(0)]
        for ts in times:
            UsageEvent.objects.create(
                organization=org,
                feature=feature,
                timestamp=ts,
                received_at=old_received if ts == times[0] else timezone.now(),
            )
        last_id = UsageEvent.objects.order_by("-id").values_list("id", flat=True)[0]
    finally:
        # Back to every app's latest migration: going back before the partitioning also
        # unapplied the migrations of other apps that depend on it (analytics' rollups).
        call_command("migrate", verbosity=0)
    assert partitions.partitioned()
    assert set(partitions.event_partitions()) >= {month_start(ts) for ts in times}
    moved = {_partition_of(str(u)) for u in UsageEvent.objects.values_list("uuid", flat=True)}
    assert moved == {partition_name(month_start(ts)) for ts in times}
    # Recent uuids enter the dedupe table; ids go on from the old sequence.
    assert EventUuid.objects.count() == 2
    new = UsageEvent.objects.create(organization=org, feature=feature, timestamp=_month(0))
    assert new.id > last_id
