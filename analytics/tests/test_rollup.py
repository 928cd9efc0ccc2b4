import threading
from datetime import date

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.models import DailyFeatureUsage, DailyOrgUsage
from telemetry.models import DirtyDay, UsageEvent

from .conftest import D1, D2, D3
from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db


def org_row(org, day):
    return DailyOrgUsage.objects.get(organization=org, date=day)


def feature_row(feat, day):
    return DailyFeatureUsage.objects.get(feature=feat, date=day)


def test_day_known_answers(org, dataset):
    written = rollup.rollup_day(D1, org)
    assert written == 3  # two feature rows + one organisation row
    day = org_row(org, D1)
    # u1 used two features and is still one active user; 23:59:59 belongs to the 1st.
    assert (day.event_count, day.active_users, day.sessions) == (3, 2, 2)
    assert day.avg_session_duration == pytest.approx((60 + 120 + 30) / 3)
    search = feature_row(dataset["search"], D1)
    assert (search.event_count, search.daily_active_users, search.sessions) == (2, 2, 2)
    assert search.total_session_duration == 90
    assert search.avg_session_duration == 45
    export = feature_row(dataset["export"], D1)
    assert (export.event_count, export.daily_active_users, export.total_session_duration) == (1, 1, 120)


def test_midnight_and_anonymous_events(org, dataset):
    rollup.rollup_day(D2, org)
    day = org_row(org, D2)
    # 00:00:00 is the 2nd; the anonymous event counts as an event but not as a user, and
    # its missing duration does not drag the average down.
    assert (day.event_count, day.active_users, day.sessions) == (2, 1, 1)
    assert day.avg_session_duration == 90
    search = feature_row(dataset["search"], D2)
    assert (search.event_count, search.daily_active_users) == (2, 1)


def test_idempotent(org, dataset):
    rollup.rollup_range(D1, D3, org)
    before = list(DailyFeatureUsage.objects.values_list("feature_id", "date", "event_count", "daily_active_users"))
    ids = set(DailyOrgUsage.objects.values_list("id", flat=True))
    rollup.rollup_range(D1, D3, org)
    after = list(DailyFeatureUsage.objects.values_list("feature_id", "date", "event_count", "daily_active_users"))
    assert sorted(before) == sorted(after)
    assert set(DailyOrgUsage.objects.values_list("id", flat=True)) == ids  # updated in place
    assert DailyOrgUsage.objects.count() == 3


def test_statements_do_not_grow_with_the_days_events(org, dataset):
    """One scan of the day and one statement per table, however many events, users and
    sessions the day holds. The second run on the same connection also shows the first one
    dropped its temporary tables (creating them again would fail). Both measured runs are
    re-rolls that add a user (one that adds nobody skips the per-feature bitmasks' check for
    later blocks): a day's first roll inserts its per-user rows in one statement per table."""
    with CaptureQueriesContext(connection) as first:
        rollup.rollup_day(D1, org)
    one = end_user(org, "one-more", first_seen=at("2025-03-01", "10:00:00"))
    event(org, dataset["search"], one, at("2025-03-01", "10:30:00"), session="m0", duration=5)
    with CaptureQueriesContext(connection) as few:
        rollup.rollup_day(D1, org)
    # Per per-user table: one insert instead of the diff and its writes (one statement on
    # PostgreSQL; on SQLite the diff's creation, three writes and its drop); a re-roll may
    # also check the features' active days for vanished rows.
    assert len(first) <= len(few)
    for i in range(12):
        person = end_user(org, f"more{i}", first_seen=at("2025-03-01", "11:00:00"))
        for feat in (dataset["search"], dataset["export"]):
            event(org, feat, person, at("2025-03-01", f"11:{i:02d}:00"), session=f"m{i % 5}", duration=i)
    with CaptureQueriesContext(connection) as many:
        rollup.rollup_day(D1, org)
    assert len(many) == len(few)
    assert (org_row(org, D1).event_count, org_row(org, D1).active_users, org_row(org, D1).sessions) == (28, 15, 7)


def test_a_marked_day_rolled_meanwhile_is_not_rolled_again(org, dataset, monkeypatch):
    # Seen: the hourly job lists the late-data marks, then rolls each listed day; when the
    # next run starts while one is still working through a backfill's marks (a 430-day
    # backfill took 454 s here), both listed the same days and rolled each of them, one
    # right behind the other. Expected: a day whose mark is gone once its lock is held is
    # skipped.
    DirtyDay.objects.create(organization=org, date=D1)
    DirtyDay.objects.create(organization=org, date=D2)
    rolled, real_day_in, real_day = [], rollup._rollup_day_in, rollup.rollup_day

    def day_in(cursor, side, **kwargs):
        rolled.append(kwargs["day"])
        return real_day_in(cursor, side, **kwargs)

    def beside_then(day, org_ref=None, **kwargs):
        if day == D1:
            real_day(D2, org)  # the other run, or `manage.py rollup`, handles D2 meanwhile
        return real_day(day, org_ref, **kwargs)

    monkeypatch.setattr(rollup, "_rollup_day_in", day_in)
    monkeypatch.setattr(rollup, "rollup_day", beside_then)
    rollup.rollup_dirty()
    assert sorted(rolled) == [D1, D2]
    assert not DirtyDay.objects.exists()


def test_late_events_rerolled_through_dirty_marks(org, dataset):
    rollup.rollup_day(D1, org)
    late = end_user(org, "late", first_seen=at("2025-03-01", "15:00:00"))
    event(org, dataset["search"], late, at("2025-03-01", "15:00:00"), session="s9", duration=10)
    DirtyDay.objects.create(organization=org, date=D1)
    assert rollup.dirty_days() == {org.pk: [D1]}
    assert rollup.rollup_dirty() == 1
    assert (org_row(org, D1).event_count, org_row(org, D1).active_users) == (4, 3)
    assert feature_row(dataset["search"], D1).event_count == 3
    assert not DirtyDay.objects.exists()
    assert rollup.rollup_dirty() == 0


def test_vanished_events_delete_stale_rows(org, dataset):
    rollup.rollup_day(D1, org)
    UsageEvent.objects.filter(feature=dataset["export"]).delete()
    rollup.rollup_day(D1, org)
    assert not DailyFeatureUsage.objects.filter(feature=dataset["export"], date=D1).exists()
    assert org_row(org, D1).event_count == 2
    UsageEvent.objects.all().delete()
    assert rollup.rollup_day(D1, org) == 0
    assert not DailyOrgUsage.objects.filter(date=D1).exists()


def test_one_org_leaves_others_alone(org, other_org, dataset):
    other_feature = feature(other_org, "search")
    event(other_org, other_feature, None, at("2025-03-01", "11:00:00"))
    rollup.rollup_day(D1, other_org)
    assert not DailyOrgUsage.objects.filter(organization=org).exists()
    assert org_row(other_org, D1).event_count == 1
    rollup.rollup_day(D1)  # every organisation
    assert org_row(org, D1).event_count == 3
    assert org_row(other_org, D1).event_count == 1


def test_empty_day(org):
    assert rollup.rollup_day(date(2025, 1, 1), org) == 0
    assert rollup.event_days(org) is None


def test_generation_bumped(org, dataset):
    before = rollup.generation(org.pk)
    rollup.rollup_day(D1, org)
    assert rollup.generation(org.pk) != before


def test_command_range_and_all_days(org, dataset, capsys):
    call_command("rollup", "--since", "2025-03-01", "--until", "2025-03-02", "--org", str(org.pk), "--no-progress")
    assert set(DailyOrgUsage.objects.values_list("date", flat=True)) == {D1, D2}
    call_command("rollup", "--all-days", "--org", org.slug, "--no-progress")
    assert set(DailyOrgUsage.objects.values_list("date", flat=True)) == {D1, D2, D3}
    assert "Rolled up 3 day(s)" in capsys.readouterr().out


def test_rolling_a_day_clears_its_late_data_marks(org, other_org, dataset):
    DirtyDay.objects.create(organization=org, date=D1)
    DirtyDay.objects.create(organization=org, date=D2)
    DirtyDay.objects.create(organization=other_org, date=D1)
    rollup.rollup_day(D1, org)
    assert set(DirtyDay.objects.values_list("organization_id", "date")) == {(org.pk, D2), (other_org.pk, D1)}
    rollup.rollup_day(D1)  # every organisation
    assert set(DirtyDay.objects.values_list("organization_id", "date")) == {(org.pk, D2)}


def test_a_mark_set_again_during_its_days_roll_by_the_same_transaction_is_kept_or_redone(org, dataset, monkeypatch):
    """Marks are only inserted when missing (no row lock for concurrent writers to queue on);
    late writers in other transactions wait for the roll (see the PostgreSQL test below). A
    mark that exists stays as it is, and the roll clears it."""
    from telemetry.services import storage

    DirtyDay.objects.create(organization=org, date=D1)
    real_session_key = rollup.session_key_sql

    def remark_then_roll():  # runs after the marks are read, before the events are
        assert storage.days_mark_dirty(org.pk, [D1]) == 1
        return real_session_key()

    monkeypatch.setattr(rollup, "session_key_sql", remark_then_roll)
    rollup.rollup_day(D1, org)
    assert not DirtyDay.objects.filter(organization=org, date=D1).exists()


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite runs one write transaction at a time (IMMEDIATE): no late writer can come in during a roll",
)
@pytest.mark.django_db(transaction=True)
def test_late_events_stored_during_a_roll_wait_for_it_and_keep_their_mark(org, monkeypatch):
    """Another process storing late events for the day being rolled: its mark waits for the
    roll's commit and is then inserted afresh, so the next run counts its events."""
    from telemetry.services import storage

    search = feature(org, "search")
    event(org, search, when=at(str(D1), "10:00:00"))
    DirtyDay.objects.create(organization=org, date=D1)
    wrote_events, done = threading.Event(), threading.Event()

    def late_writer():
        try:
            with transaction.atomic():
                storage.events_insert(
                    rows=[{"organization_id": org.pk, "feature_id": search.pk, "timestamp": at(str(D1), "11:00:00")}]
                )
                wrote_events.set()
                storage.days_mark_dirty(org.pk, [D1])  # waits for the roll's lock
        finally:
            connections.close_all()
            done.set()

    writer = threading.Thread(target=late_writer)
    real_session_key = rollup.session_key_sql

    def start_the_writer_then_roll():  # after the marks are read, before the events are
        if not writer.is_alive() and not done.is_set():
            writer.start()
            assert wrote_events.wait(10)
            assert not done.wait(0.5), "the late writer must wait for the roll"
        return real_session_key()

    monkeypatch.setattr(rollup, "session_key_sql", start_the_writer_then_roll)
    rollup.rollup_day(D1, org)
    writer.join(10)
    assert done.is_set()
    assert org_row(org, D1).event_count == 1  # the roll did not see the late event…
    assert DirtyDay.objects.filter(organization=org, date=D1).exists()  # …and its mark is kept
    assert rollup.rollup_dirty() == 1
    assert org_row(org, D1).event_count == 2


def test_all_days_clears_every_mark_it_made_redundant(org, other_org, dataset, capsys):
    """`make demo` seeds past days (each marked as late data), then rolls up every day: the
    first hourly run must find nothing left to re-roll."""
    for day in (D1, D2, D3):
        DirtyDay.objects.create(organization=org, date=day)
    DirtyDay.objects.create(organization=other_org, date=D1)
    call_command("rollup", "--all-days", "--no-progress")
    assert not DirtyDay.objects.exists()
    assert "4 late-data mark(s) of those days cleared" in capsys.readouterr().out
    assert rollup.rollup_dirty() == 0


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "2025-03-05", "--until", "2025-03-01"],
        ["--since", "03/01/2025"],
        ["--org", "no-such-org"],
        # Seen: --all-days rolled every day and ignored the range asked for, saying nothing.
        ["--all-days", "--since", "2025-03-01"],
        ["--all-days", "--until", "2025-03-01"],
    ],
)
def test_command_bad_input(db, args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("rollup", *args, "--no-progress")
