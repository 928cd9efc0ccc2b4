"""An organisation's deletion takes every row of every app that belongs to it, and nothing of
another organisation's; a run stopped or failed mid-way leaves consistent rows behind and the
next one finishes. Rows of every model come from `tenant_rows`; the tables are read through
the app registry, so a model added later is counted without a change here. On PostgreSQL the
events' chunks each name the months they span (the table is partitioned by month)."""

import re
import sqlite3
import time
from datetime import timedelta

import pytest
from celery import Celery
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conftest import PASSWORD, make_org
from core.testing import celery_worker
from telemetry.models import EndUser, EventUuid, Feature, UsageEvent
from tenants import org_deletion, tasks
from tenants.models import Organization, User
from usage_platform.celery import app

from .tenant_rows import tenant_rows

pytestmark = pytest.mark.django_db

EVENTS = 35


def _events(org, n=EVENTS, start=None, people="p"):
    feature = Feature.objects.filter(organization=org).first()
    people = [EndUser.objects.create(organization=org, external_id=f"{org.slug}-{people}{i}") for i in range(3)]
    start = start or timezone.now() - timedelta(days=2)
    created = UsageEvent.objects.bulk_create(
        UsageEvent(organization=org, feature=feature, end_user=people[i % 3], timestamp=start + timedelta(minutes=i))
        for i in range(n)
    )
    # Ingestion writes these on PostgreSQL only; the deletion must take them on both.
    EventUuid.objects.bulk_create(EventUuid(organization=org, uuid=event.uuid) for event in created)


@pytest.fixture
def two_tenants(db):
    gone, kept = make_org("Gone Co"), make_org("Kept Co")
    for admin_user in (gone, kept):
        tenant_rows(admin_user)
        _events(admin_user.organization)
    return gone.organization, kept.organization


def _owned_models():
    """Every model with a foreign key to Organization, and those pointing at one of them
    without an organisation of their own (webhook deliveries): {model: lookup to the org}."""
    direct = {
        model: field.name
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model is Organization
    }
    beneath = {
        model: f"{field.name}__{direct[field.related_model]}"
        for model in apps.get_models()
        if model not in direct
        for field in model._meta.concrete_fields
        if field.is_relation and field.related_model in direct and field.related_model is not User
    }
    return {**direct, **beneath}


def rows_by_model(org_id):
    return {
        model._meta.label: model._base_manager.filter(**{lookup: org_id}).count()
        for model, lookup in _owned_models().items()
    }


def dangling():
    """Rows whose foreign key names a row that is not there (the events' keys are not
    database constraints, so nothing else would notice)."""
    found = []
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if not field.is_relation or field.related_model is None:
                continue
            targets = field.related_model._base_manager.values("pk")
            rows = model._base_manager.exclude(**{f"{field.attname}__isnull": True})
            if rows.exclude(**{f"{field.attname}__in": targets}).exists():
                found.append(f"{model._meta.label}.{field.name}")
    return found


def test_the_admin_delete_then_its_task_delete_every_row_of_the_organisation_and_none_of_another(
    client, two_tenants, django_capture_on_commit_callbacks
):
    gone, kept = two_tenants
    kept_before = rows_by_model(kept.pk)
    gone_before = rows_by_model(gone.pk)
    # Every model with an organisation has a row of each, so each is shown to go.
    assert all(gone_before.values()) and all(kept_before.values()), gone_before
    client.force_login(User.objects.create_superuser(email="root@platform.example", password=PASSWORD))

    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly once committed
        response = client.post(reverse("admin:tenants_organization_delete", args=[gone.pk]), {"post": "yes"})
    assert response.status_code == 302

    assert not Organization.objects.filter(pk=gone.pk).exists()
    assert not any(rows_by_model(gone.pk).values()), rows_by_model(gone.pk)
    assert rows_by_model(kept.pk) == kept_before
    assert dangling() == []


def test_runs_stopped_after_each_chunk_leave_consistent_rows_and_the_last_finishes(two_tenants):
    """Every run stops after its first chunk (out of time at once): between any two, the rows
    are consistent (the events go before the features and end users they name, the
    per-user rollups before the end users) and the count of rows deleted so far is right."""
    gone, kept = two_tenants
    kept_before, left = rows_by_model(kept.pk), sum(rows_by_model(gone.pk).values())
    deleted, lease, runs = 0, None, 0
    org_deletion.organizations_deletion_request([gone], send_task=False)
    while (run := org_deletion.organization_delete_run(gone.pk, lease=lease, chunk_rows=10, seconds=0)).state != "done":
        assert run.state == "paused" and 1 <= run.rows <= 10, run
        deleted, left, lease, runs = deleted + run.rows, left - run.rows, run.lease, runs + 1
        assert sum(rows_by_model(gone.pk).values()) == left
        assert Organization.objects.get(pk=gone.pk).deletion_rows == run.total == deleted
        assert Organization.objects.get(pk=gone.pk).deletion_requested_at is not None
        assert dangling() == []
    assert runs > EVENTS // 10 and left == 0
    assert not Organization.objects.filter(pk=gone.pk).exists()
    assert rows_by_model(kept.pk) == kept_before
    assert dangling() == []


def test_a_worker_that_dies_mid_way_is_resumed_by_the_beat_entry(
    two_tenants, monkeypatch, django_capture_on_commit_callbacks
):
    gone, kept = two_tenants
    kept_before = rows_by_model(kept.pk)
    org_deletion.organizations_deletion_request([gone], send_task=False)
    real, chunks = org_deletion._chunk_delete, []

    def dying(*args):
        if len(chunks) == 3:
            raise SystemExit("worker killed")  # mid-chunk: its transaction is rolled back
        chunks.append(real(*args))
        return chunks[-1]

    monkeypatch.setattr(org_deletion, "_chunk_delete", dying)
    with pytest.raises(SystemExit):
        org_deletion.organization_delete_run(gone.pk, chunk_rows=10)
    monkeypatch.setattr(org_deletion, "_chunk_delete", real)
    assert dangling() == []
    # A killed worker leaves its lease behind: the beat entry waits for it to expire.
    Organization.objects.filter(pk=gone.pk).update(deletion_heartbeat_at=timezone.now())
    assert tasks.organization_deletions_resume() == []
    Organization.objects.filter(pk=gone.pk).update(deletion_heartbeat_at=timezone.now() - org_deletion.LEASE * 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.organization_deletions_resume() == [gone.pk]
    assert not Organization.objects.filter(pk=gone.pk).exists()
    assert not any(rows_by_model(gone.pk).values())
    assert rows_by_model(kept.pk) == kept_before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the events are partitioned by month on PostgreSQL")
def test_on_postgresql_each_chunk_of_events_reads_only_the_partitions_of_the_months_it_spans(two_tenants):
    from telemetry.services import partitions

    gone, kept = two_tenants
    # Events in three months, each in a partition of its own once the nightly job has run.
    for months_back in (0, 1, 5):
        _events(gone, 12, start=timezone.now() - timedelta(days=31 * months_back + 1), people=f"m{months_back}-")
    partitions.event_partitions_prepare()
    kept_events = UsageEvent.objects.filter(organization=kept).count()
    org_deletion.organizations_deletion_request([gone], send_task=False)

    with CaptureQueriesContext(connection) as queries:
        run = org_deletion.organization_delete_run(gone.pk, chunk_rows=10, seconds=None)
    assert run.state == "done"
    chunks = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('DELETE FROM "telemetry_usageevent"') and '"id" IN' in q["sql"]
    ]
    assert len(chunks) >= (EVENTS + 36) // 10
    assert all('"timestamp" >=' in sql and '"timestamp" <=' in sql for sql in chunks), chunks
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry_usageevent'::regclass")
        (months,) = cursor.fetchone()
        for sql in chunks:
            cursor.execute(f"EXPLAIN {sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            # Pruned when planned: the partitions of the months the chunk spans, not all.
            scanned = set(re.findall(r"Delete on (telemetry_usageevent_\w+)", plan))
            assert 1 <= len(scanned) < months, plan
    assert not UsageEvent.objects.filter(organization_id=gone.pk).exists()
    assert UsageEvent.objects.filter(organization=kept).count() == kept_events
    assert dangling() == []


def _events_left(org_id, sqlite_path):
    """The worker's view: the test database on PostgreSQL, its file copy on SQLite."""
    if sqlite_path is None:
        return UsageEvent.objects.filter(organization_id=org_id).count(), Organization.objects.filter(
            pk=org_id
        ).exists()
    with sqlite3.connect(sqlite_path) as db:
        (events,) = db.execute(
            "SELECT count(*) FROM telemetry_usageevent WHERE organization_id = ?", [org_id]
        ).fetchone()
        (orgs,) = db.execute("SELECT count(*) FROM tenants_organization WHERE id = ?", [org_id]).fetchone()
    return events, bool(orgs)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_celery_worker_runs_the_deletion_sent_through_the_broker(two_tenants, redis_url, tmp_path):
    """The task is found by name in a worker process (tenants registers its tasks in ready)."""
    gone, kept = two_tenants
    org_deletion.organizations_deletion_request([gone], send_task=False)
    app.conf.task_always_eager = False
    with celery_worker(tmp_path, redis_url) as (worker, sqlite_path):
        producer = Celery("test-producer", broker=redis_url, set_as_current=False)
        producer.send_task(org_deletion.DELETE_TASK, kwargs={"org_id": gone.pk})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _events_left(gone.pk, sqlite_path) != (0, False):
            assert worker.poll() is None, worker.stdout.read().decode()[-3000:]
            time.sleep(0.2)
    assert _events_left(gone.pk, sqlite_path) == (0, False)
    assert _events_left(kept.pk, sqlite_path) == (EVENTS + 1, True)
