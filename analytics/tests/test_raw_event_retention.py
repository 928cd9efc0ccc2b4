"""Raw-event retention keeps the rollups: dropping a month's partition (PostgreSQL) or rows
(SQLite) leaves its daily rollups, and the rollup job never recomputes a day past the horizon."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from analytics.models import DailyOrgUsage
from analytics.rollup import rollup_day
from core.testing import page_client
from telemetry import tasks
from telemetry.models import Feature, UsageEvent
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


def test_a_rollup_or_funnel_before_the_horizon_says_so_instead_of_answering_zeros(admin_client, org, settings):
    # Seen: aggregate/run of an expired day answered {"aggregated": 0}, a funnel over expired
    # months 0 users at every step, `manage.py rollup` "0 row(s) written": nothing said that
    # the raw events were gone. Expected: a range wholly before the horizon is refused
    # naming the setting, one that straddles it is cut there and says where.
    settings.RAW_EVENT_RETENTION_MONTHS = 3
    horizon = partitions.raw_events_horizon().date()
    old, last_old = horizon.replace(year=horizon.year - 1), horizon - timedelta(days=1)

    refused = admin_client.post(f"/api/v1/analytics/aggregate/run?date={old}")
    assert refused.status_code == 400
    assert "RAW_EVENT_RETENTION_MONTHS=3" in refused.json()["errors"]["date"][0]
    cut = admin_client.post(f"/api/v1/analytics/aggregate/run?since={last_old}&until={horizon}")
    assert cut.status_code == 200 and cut.json()["since"] == horizon.isoformat()

    for key in ("a", "b"):
        Feature.objects.create(organization=org, key=key, name=key)
    steps = "steps=a,b"
    funnel = admin_client.get(f"/api/v1/analytics/funnel?start={old}&end={last_old}&{steps}")
    assert funnel.status_code == 400
    assert "RAW_EVENT_RETENTION_MONTHS" in funnel.json()["errors"]["start"][0]
    straddling = admin_client.get(f"/api/v1/analytics/funnel?start={last_old}&end={horizon}&{steps}")
    assert straddling.status_code == 200 and straddling.json()["start"] == horizon.isoformat()

    with pytest.raises(CommandError, match="RAW_EVENT_RETENTION_MONTHS"):
        call_command("rollup", "--since", str(old), "--until", str(last_old), "--no-progress")
    out = StringIO()
    call_command("rollup", "--since", str(last_old), "--until", str(horizon), "--no-progress", stdout=out)
    assert f"Days {last_old}..{last_old} skipped" in out.getvalue()
    assert f"Rolled up 1 day(s) {horizon}..{horizon}" in out.getvalue()


def test_a_raw_event_breakdown_over_expired_days_counts_from_the_horizon_and_says_so(
    key_client, admin_client, admin_user, org, settings
):
    # Seen: a breakdown by an event property read its distinct users from the raw events, so
    # over a range reaching past RAW_EVENT_RETENTION_MONTHS the expired days showed as nobody
    # beside event counts the rollups still had, and nothing said so. Expected: the raw reads
    # count from the first day kept, the answer names that day, the page says it.
    settings.RAW_EVENT_RETENTION_MONTHS = 3
    horizon = partitions.raw_events_horizon()
    settings.RAW_EVENT_RETENTION_MONTHS = 0  # sent and rolled up while they were kept
    old, kept = horizon - timedelta(hours=12), horizon + timedelta(hours=12)
    sent = _send(
        key_client,
        event(timestamp=old.isoformat(), user_id="u-old", metadata={"source": "email"}),
        event(timestamp=kept.isoformat(), user_id="u-new", metadata={"source": "ads"}),
    )
    assert sent["accepted"] == 2
    for day in (old.date(), kept.date()):
        rollup_day(day, org)
    settings.RAW_EVENT_RETENTION_MONTHS = 3
    first, last_old = horizon.date(), old.date()

    def breakdown(start):
        answer = admin_client.get(f"/api/v1/analytics/usage-summary?breakdown=event.source&start={start}&end={first}")
        assert answer.status_code == 200, answer.content
        split = answer.json()["breakdown"]
        values = {name: {p["key"]: p["value"] for p in split[name]} for name in ("events", "active_users")}
        return values, split.get("raw_events_from")

    values, raw_from = breakdown(last_old)
    assert values == {"events": {"email": 1, "ads": 1}, "active_users": {"ads": 1}}
    assert raw_from == first.isoformat()
    assert breakdown(first) == ({"events": {"ads": 1}, "active_users": {"ads": 1}}, None)

    weekly_by_source = "metric=active_users&interval=week&breakdown=event.source"
    weekly = admin_client.get(f"/api/v1/analytics/timeseries?{weekly_by_source}&start={last_old}&end={first}").json()
    assert weekly["raw_events_from"] == first.isoformat()
    assert {s["key"] for s in weekly["series"] if any(p["value"] for p in s["points"])} == {"ads"}

    page = page_client(admin_user).get(f"/?breakdown=event.source&start={last_old}&end={first}")
    assert page.status_code == 200
    assert 'data-testid="raw-events-note"' in page.text
    assert f"Raw events before {first:%-d %b %Y} are not kept" in page.text
