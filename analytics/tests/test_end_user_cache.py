"""One end user's detail (`queries.end_user_detail`): what it reads from the user's events is
cached only for a settled user (last seen over SETTLED_AFTER ago) and for at most
SETTLED_CACHE_SECONDS, so a profile opened twice reads its events once; a newer event, an
event of a user still active, a late event once its day is rolled up again or the minute is
over, and a profile change all show."""

from datetime import UTC, datetime, timedelta

import pytest

from analytics import queries, rollup
from analytics.queries import cache as analytics_cache
from analytics.queries.end_user import SETTLED_AFTER, SETTLED_CACHE_SECONDS
from telemetry.models import EndUser
from telemetry.services.ingest import events_ingest

pytestmark = pytest.mark.django_db


def _send(org, user_id, when, feature="app"):
    """One event of `user_id` at `when`, through ingestion (which keeps `last_seen`)."""
    result = events_ingest(org, [{"feature": feature, "user_id": user_id, "timestamp": when.isoformat()}])
    assert not result.errors and result.accepted == 1


def _events(org, user_id):
    detail = queries.end_user_detail(org, user_id)
    return detail["totals"]["events"], detail["timeline_events"]


def test_a_settled_user_is_read_from_the_cache(org, django_assert_num_queries):
    _send(org, "quiet", datetime.now(UTC) - 2 * SETTLED_AFTER)
    first = queries.end_user_detail(org, "quiet")
    assert first["totals"]["events"] == 1
    with django_assert_num_queries(1):  # the profile alone
        again = queries.end_user_detail(org, "quiet")
    assert again == first


def test_a_user_seen_lately_is_read_afresh(org, django_assert_num_queries):
    now = datetime.now(UTC)
    _send(org, "active", now - timedelta(minutes=5))
    assert _events(org, "active") == (1, 1)
    # Older than the last one: `last_seen` does not move, yet the user is still active.
    _send(org, "active", now - timedelta(minutes=20))
    assert _events(org, "active") == (2, 2)
    with django_assert_num_queries(4):  # the profile, totals, top features, timeline
        queries.end_user_detail(org, "active")


def test_an_event_newer_than_last_seen_shows_at_once(org):
    now = datetime.now(UTC)
    _send(org, "quiet", now - timedelta(days=3))
    assert _events(org, "quiet") == (1, 1)
    _send(org, "quiet", now - timedelta(days=2))
    assert _events(org, "quiet") == (2, 2)


def test_a_late_event_shows_once_its_day_is_rolled_up_again(org):
    now = datetime.now(UTC)
    _send(org, "quiet", now - timedelta(days=2))
    assert _events(org, "quiet") == (1, 1)
    # Before the last one: its day is marked for the next rollup, which drops the
    # organisation's cached figures, the user's detail among them.
    _send(org, "quiet", now - timedelta(days=4))
    assert rollup.rollup_dirty() >= 1
    assert _events(org, "quiet") == (2, 2)


def test_the_profile_is_read_on_every_call(org):
    _send(org, "quiet", datetime.now(UTC) - timedelta(days=2))
    assert queries.end_user_detail(org, "quiet")["email"] == ""
    EndUser.objects.filter(organization=org, external_id="quiet").update(email="quiet@customer.example", age=41)
    detail = queries.end_user_detail(org, "quiet")
    assert (detail["email"], detail["age"]) == ("quiet@customer.example", 41)


def test_older_pages_are_read_afresh(org):
    now = datetime.now(UTC)
    _send(org, "quiet", now - timedelta(days=2))
    newest = queries.end_user_detail(org, "quiet")["timeline"][0]["events"][0]["uuid"]
    _send(org, "quiet", now - timedelta(days=3))  # late, not rolled up yet
    older = queries.end_user_detail(org, "quiet", before=newest)
    assert older["timeline_events"] == 1
    assert older["timeline"][0]["events"][0]["uuid"] != newest


def test_two_settled_users_seen_at_the_same_moment_have_their_own_entries(org):
    moment = datetime.now(UTC) - timedelta(days=2)
    _send(org, "first", moment, feature="search")
    _send(org, "second", moment, feature="export")
    _send(org, "second", moment - timedelta(hours=1), feature="export")
    assert _events(org, "first") == (1, 1)
    assert _events(org, "second") == (2, 2)
    assert queries.end_user_detail(org, "first")["top_features"][0]["feature_key"] == "search"


def test_the_entry_lives_at_most_a_minute(org, monkeypatch):
    """A late event of today's is not marked for a re-roll (today is rolled hourly anyway):
    the entry's own minute bounds how long it stays unseen."""
    lifetimes = []

    class Noting:
        """The cache, noting the lifetime each user-detail entry is stored with."""

        def __init__(self, real):
            self.real = real

        def get(self, key, *args, **kwargs):
            return self.real.get(key, *args, **kwargs)

        def set(self, key, value, timeout=None, **kwargs):
            if ":end_user_events:" in key:
                lifetimes.append(timeout)
            return self.real.set(key, value, timeout, **kwargs)

    monkeypatch.setattr(analytics_cache, "cache", Noting(analytics_cache.cache))
    _send(org, "quiet", datetime.now(UTC) - 2 * SETTLED_AFTER)
    queries.end_user_detail(org, "quiet")
    assert lifetimes == [SETTLED_CACHE_SECONDS]
