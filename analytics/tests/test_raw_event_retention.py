"""Raw-event retention keeps the rollups: dropping a month's partition (PostgreSQL) or rows
(SQLite) leaves its daily rollups, and the rollup job never recomputes a day past the horizon."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.utils import timezone

from analytics.models import DailyOrgUsage
from analytics.rollup import rollup_day
from telemetry import tasks
from telemetry.models import UsageEvent
from telemetry.services import partitions
from telemetry.services.partitions import month_start, months_add, partition_name
from telemetry.tests.helpers import BATCH, event, post

pytestmark = pytest.mark.django_db


def _month(offset: int) -> datetime:
    month = months_add(month_start(timezone.now()), offset)
    return datetime(month.year, month.month, 15, 12, tzinfo=UTC)


def _send(client, *items):
    resp = post(client, BATCH, {"events": list(items)})
    assert resp.status_code == 200, resp.content
    return resp.json()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only")
def test_retention_drops_expired_partitions_and_keeps_the_rollups(key_client, org, settings):
    old, kept = _month(-5), _month(-2)
    assert _send(key_client, event(timestamp=old.isoformat()), event(timestamp=kept.isoformat()))["accepted"] == 2
    rollup_day(old.date(), org)
    assert DailyOrgUsage.objects.get(organization=org, date=old.date()).event_count == 1
    tasks.partitions_prepare.apply()  # the old month's partition, as the nightly job makes it

    settings.RAW_EVENT_RETENTION_MONTHS = 4  # this month and the three before
    result = tasks.raw_events_expire.apply().get()
    assert partition_name(month_start(old)) in result["dropped"]
    assert partition_name(month_start(kept)) not in result["dropped"]
    assert month_start(old) not in partitions.event_partitions()
    assert list(UsageEvent.objects.filter(organization=org).values_list("timestamp", flat=True)) == [kept]
    # The rollups stay, and re-rolling the expired day leaves them as they were.
    assert rollup_day(old.date(), org) == 0
    assert DailyOrgUsage.objects.get(organization=org, date=old.date()).event_count == 1


def test_retention_keeps_the_rollups_on_every_database(key_client, org, settings):
    old = _month(-6)
    assert _send(key_client, event(timestamp=old.isoformat()), event())["accepted"] == 2
    rollup_day(old.date(), org)
    settings.RAW_EVENT_RETENTION_MONTHS = 3
    partitions.raw_events_expire()
    assert UsageEvent.objects.filter(organization=org).count() == 1
    assert rollup_day(old.date(), org) == 0
    assert DailyOrgUsage.objects.get(organization=org, date=old.date()).event_count == 1
