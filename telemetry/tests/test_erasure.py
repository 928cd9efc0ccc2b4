"""Erasing end users: their events go in one pass over them, which also names the UTC days to
re-roll; everyone else's events stay."""

import uuid
from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from telemetry.models import DirtyDay, EndUser, Feature, UsageEvent
from telemetry.services import erasure

pytestmark = pytest.mark.django_db


def _events(org, person, *moments):
    search, _ = Feature.objects.get_or_create(organization=org, key="search", defaults={"name": "Search"})
    for moment in moments:
        UsageEvent.objects.create(
            uuid=uuid.uuid4(), organization=org, feature=search, end_user=person, timestamp=moment
        )


def test_erases_their_events_and_marks_their_utc_days(org, other_org):
    ann, bob, kept = (EndUser.objects.create(organization=org, external_id=name) for name in ("ann", "bob", "kept"))
    zoe = EndUser.objects.create(organization=other_org, external_id="zoe")
    last_second = datetime(2025, 3, 1, 23, 59, 59, tzinfo=UTC)
    _events(org, ann, last_second, datetime(2025, 3, 2, 0, 0, tzinfo=UTC), datetime(2025, 3, 2, 9, 0, tzinfo=UTC))
    _events(org, bob, datetime(2025, 3, 4, 9, 0, tzinfo=UTC))
    _events(other_org, zoe, datetime(2025, 3, 5, 9, 0, tzinfo=UTC))
    _events(org, kept, datetime(2025, 3, 6, 9, 0, tzinfo=UTC))
    _events(org, None, datetime(2025, 3, 7, 9, 0, tzinfo=UTC))

    erased = erasure.end_users_erase(EndUser.objects.filter(external_id__in=["ann", "bob", "zoe"]))

    assert erased == erasure.Erased(end_users=3, events=5, days_to_reroll=4)
    marks = set(DirtyDay.objects.values_list("organization_id", "date"))
    assert marks == {
        (org.pk, date(2025, 3, 1)),
        (org.pk, date(2025, 3, 2)),
        (org.pk, date(2025, 3, 4)),
        (other_org.pk, date(2025, 3, 5)),
    }
    assert set(EndUser.objects.values_list("external_id", flat=True)) == {"kept"}
    assert UsageEvent.objects.filter(end_user=kept).count() == 1
    assert UsageEvent.objects.filter(end_user__isnull=True).count() == 1


def test_reads_their_events_once(org):
    person = EndUser.objects.create(organization=org, external_id="ann")
    _events(org, person, *(datetime(2025, 3, day, 9, 0, tzinfo=UTC) for day in (1, 2, 2, 3)))
    with CaptureQueriesContext(connection) as queries:
        erased = erasure.end_users_erase(EndUser.objects.filter(pk=person.pk))
    assert erased == erasure.Erased(end_users=1, events=4, days_to_reroll=3)
    # One statement reads the events table: no SELECT before it, and no SET NULL of the
    # events afterwards (the ORM's delete of the end user would scan them for none left).
    reads = [q["sql"] for q in queries.captured_queries if '"telemetry_usageevent"' in q["sql"]]
    assert len(reads) == 1, reads
    assert reads[0].startswith("DELETE") and '"organization_id" IN' in reads[0]


def test_no_one_to_erase(org):
    assert erasure.end_users_erase(EndUser.objects.none()) == erasure.Erased(0, 0, 0)
