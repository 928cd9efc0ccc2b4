import uuid
from datetime import date, timedelta

import pytest
from django.utils import timezone

from analytics import queries, rollup
from core.exceptions import DomainError, NotFound
from telemetry.models import UsageEvent

from .conftest import D1, D2, D3
from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db


@pytest.fixture
def rolled(org, dataset):
    rollup.rollup_range(D1, D3, org)
    return dataset


def test_summary_known_answers(org, rolled):
    s = queries.usage_summary(org, D1, D3)
    assert s["total_events"] == {"value": 6, "previous": 0, "change_pct": None}
    assert s["active_users"]["value"] == 3  # u1 on two features and u2 on two days count once
    assert s["features_tracked"]["value"] == 2
    assert s["sessions"]["value"] == 4  # s1+s2, s3, s4
    # only events with a duration: (60+120+30+90+30)/5
    assert s["avg_session_duration"]["value"] == 66.0
    assert (s["previous_start"], s["previous_end"]) == (date(2025, 2, 26), date(2025, 2, 28))


def test_summary_previous_period_and_change(org, rolled):
    s = queries.usage_summary(org, D2, D3)  # previous period: Feb 28 .. Mar 1
    assert s["total_events"] == {"value": 3, "previous": 3, "change_pct": 0.0}
    assert s["active_users"] == {"value": 2, "previous": 2, "change_pct": 0.0}
    assert s["sessions"] == {"value": 2, "previous": 2, "change_pct": 0.0}
    assert s["avg_session_duration"] == {"value": 60.0, "previous": 70.0, "change_pct": -14.3}
    one = queries.usage_summary(org, D3, D3)  # vs Mar 2: 1 event vs 2
    assert one["total_events"]["change_pct"] == -50.0


def test_summary_filtered_by_feature(org, rolled):
    s = queries.usage_summary(org, D1, D3, filters={"feature": rolled["export"]})
    assert s["total_events"]["value"] == 2
    assert s["active_users"]["value"] == 2
    assert s["features_tracked"]["value"] == 1


def test_summary_with_demographic_filter_reads_raw_events(org, rolled):
    s = queries.usage_summary(org, D1, D3, filters={"age": ">40"})  # u2 only
    assert s["total_events"]["value"] == 2
    assert s["active_users"]["value"] == 1
    assert s["features_tracked"]["value"] == 1
    assert s["sessions"]["value"] == 2
    assert s["avg_session_duration"]["value"] == 60.0
    prev = queries.usage_summary(org, D2, D3, filters={"gender": "M", "feature": rolled["search"]})
    assert prev["total_events"] == {"value": 1, "previous": 1, "change_pct": 0.0}
    assert prev["avg_session_duration"] == {"value": 90.0, "previous": 30.0, "change_pct": 200.0}


def test_empty_org_gives_zeros(org):
    s = queries.usage_summary(org, D1, D3)
    for name in ("total_events", "active_users", "features_tracked", "sessions"):
        assert s[name] == {"value": 0, "previous": 0, "change_pct": None}
    # No duration to average: unknown, not 0 s.
    assert s["avg_session_duration"] == {"value": None, "previous": None, "change_pct": None}
    assert queries.feature_usage(org, D1, D3) == []
    assert queries.feature_sparklines(org, D1, D3) == {}
    ts = queries.timeseries(org, metric="events", interval="day", start=D1, end=D3)
    assert [p["value"] for p in ts["points"]] == [0, 0, 0]
    assert queries.top_users(org, limit=5, start=D1, end=D3) == []
    assert queries.user_activity_page(org)["count"] == 0
    assert all(c["size"] == 0 for c in queries.retention(org, weeks=4, end=D3)["cohorts"])
    f = queries.funnel(org, steps=["search", "export"], window_days=7, start=D1, end=D3)
    assert [s["users"] for s in f["steps"]] == [0, 0]


def test_feature_usage(org, rolled):
    rows = queries.feature_usage(org, D1, D3)
    assert [r["feature_key"] for r in rows] == ["search", "export"]
    search, export = rows
    assert search["events"] == 4
    assert search["avg_daily_active_users"] == round((2 + 1) / 3, 2)
    assert search["avg_session_duration"] == 60.0  # (60+30+90)/3 timed events
    assert search["share"] == 66.7 and export["share"] == 33.3
    assert search["change_pct"] is None
    trend = queries.feature_usage(org, D3, D3)  # Mar 3 vs Mar 2
    by_key = {r["feature_key"]: r for r in trend}
    assert by_key["search"]["events"] == 0 and by_key["search"]["change_pct"] == -100.0
    assert by_key["export"]["change_pct"] is None


def test_sparklines(org, rolled):
    lines = queries.feature_sparklines(org, D1, D3)
    assert lines == {rolled["search"].pk: [2, 2, 0], rolled["export"].pk: [1, 0, 1]}


def test_feature_get(org, other_org, rolled):
    assert queries.feature_get(org, rolled["search"].pk) == rolled["search"]
    foreign = feature(other_org, "search")
    for ref in (foreign.pk, 999999, "abc"):
        with pytest.raises(NotFound):
            queries.feature_get(org, ref)


def test_end_user_is_own(org, other_org, member_user, analyst_user):
    end_user(org, "mine", member=member_user)
    end_user(org, "theirs")
    end_user(other_org, "elsewhere", member=member_user)
    assert queries.end_user_is_own(org, "mine", member_user)
    assert not queries.end_user_is_own(org, "mine", analyst_user)
    assert not queries.end_user_is_own(org, "theirs", member_user)
    assert not queries.end_user_is_own(org, "elsewhere", member_user)  # another organisation's
    assert not queries.end_user_is_own(org, "nobody", member_user)


@pytest.mark.parametrize(
    ("metric", "interval", "expected"),
    [
        ("events", "day", [3, 2, 1]),
        ("active_users", "day", [2, 1, 1]),
        ("avg_session_duration", "day", [70.0, 90.0, 30.0]),
        ("events", "week", [5, 1]),  # 2025-03-01/02 are Sat/Sun; 03-03 a Monday
        ("active_users", "week", [2, 1]),  # weekly distinct users come from raw events
        ("avg_session_duration", "week", [75.0, 30.0]),
    ],
)
def test_timeseries_from_rollups(org, rolled, metric, interval, expected):
    ts = queries.timeseries(org, metric=metric, interval=interval, start=D1, end=D3)
    assert [p["value"] for p in ts["points"]] == expected
    if interval == "week":
        # The week of Mon 2025-02-24 is cut by start (Sat 03-01): labelled with 03-01, not before start.
        assert [p["date"] for p in ts["points"]] == [D1, date(2025, 3, 3)]


def test_timeseries_zero_filled_and_by_feature(org, rolled):
    ts = queries.timeseries(
        org, metric="events", interval="day", start=D1, end=D3 + timedelta(days=2), feature=rolled["export"]
    )
    assert [p["value"] for p in ts["points"]] == [1, 0, 1, 0, 0]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"age": "18-40"}, [2, 0, 0]),  # u1
        ({"age": ">40"}, [1, 1, 0]),  # u2
        ({"age": "<18"}, [0, 0, 1]),  # u3
        ({"gender": "M"}, [1, 1, 0]),
        ({"gender": "F", "age": ">40"}, [0, 0, 0]),
    ],
)
def test_timeseries_demographics_from_raw_events(org, rolled, filters, expected):
    ts = queries.timeseries(org, metric="events", interval="day", start=D1, end=D3, **filters)
    assert [p["value"] for p in ts["points"]] == expected


def test_timeseries_demographic_active_users_and_duration(org, rolled):
    users = queries.timeseries(org, metric="active_users", interval="week", start=D1, end=D3, age=">40")
    assert [p["value"] for p in users["points"]] == [1, 0]
    avg = queries.timeseries(org, metric="avg_session_duration", interval="day", start=D1, end=D3, gender="M")
    # The last day has no event with a duration: nothing to average, null.
    assert [p["value"] for p in avg["points"]] == [30.0, 90.0, None]


def test_top_users(org, rolled):
    rows = queries.top_users(org, limit=2, start=D1, end=D3)
    assert [(r["user_id"], r["events"], r["top_feature"]) for r in rows] == [("u1", 2, "export"), ("u2", 2, "search")]
    assert rows[0]["avg_session_duration"] == 90.0
    assert rows[1]["first_seen"] == at("2025-03-01", "23:59:59")
    assert rows[1]["last_seen"] == at("2025-03-02", "00:00:00")


@pytest.fixture
def recent(org, member_user):
    """Activity in the last days, for the look-back based user list."""
    now = timezone.now()
    f1, f2 = feature(org, "alpha"), feature(org, "beta")
    mine = end_user(org, "member-self", email="me@customer.example", member=member_user, first_seen=now)
    other = end_user(org, "zed", email="zed@customer.example", first_seen=now)
    old = end_user(org, "old", first_seen=now - timedelta(days=90))
    for i in range(3):
        event(org, f1, other, now - timedelta(hours=i + 1), session="z", duration=10)
    event(org, f2, other, now - timedelta(hours=5), session="z", duration=40)
    event(org, f2, mine, now - timedelta(days=2), session="m", duration=20)
    event(org, f1, old, now - timedelta(days=60), session="o", duration=5)
    # The user list reads the per-user rollups: roll up each day that holds an event.
    for day in sorted({e.timestamp.date() for e in UsageEvent.objects.filter(organization=org)}):
        rollup.rollup_day(day, org)
    return {"mine": mine, "other": other, "old": old}


def test_user_activity_page(org, recent, member_user):
    page = queries.user_activity_page(org, days=30)
    assert page["count"] == 2
    assert [r["user_id"] for r in page["results"]] == ["zed", "member-self"]
    zed = page["results"][0]
    assert (zed["events"], zed["avg_session_duration"], zed["top_feature"]) == (4, 17.5, "alpha")
    assert queries.user_activity_page(org, days=90)["count"] == 3
    assert [r["user_id"] for r in queries.user_activity_page(org, sort="user_id")["results"]] == ["member-self", "zed"]
    assert [r["user_id"] for r in queries.user_activity_page(org, search="ME@cust")["results"]] == ["member-self"]
    assert [r["user_id"] for r in queries.user_activity_page(org, only_member=member_user)["results"]] == [
        "member-self"
    ]
    second = queries.user_activity_page(org, page=2, page_size=1)
    assert second["count"] == 2 and [r["user_id"] for r in second["results"]] == ["member-self"]
    everything = queries.user_activity_page(org, page_size=None)
    assert len(everything["results"]) == 2 and everything["results"][0]["top_feature"] == "alpha"


def test_end_user_detail(org, other_org, rolled):
    event(org, rolled["search"], rolled["u1"], at("2025-03-05", "10:00:00"))
    event(org, rolled["export"], rolled["u1"], at("2025-03-05", "10:10:00"))
    event(org, rolled["export"], rolled["u1"], at("2025-03-05", "12:00:00"))
    detail = queries.end_user_detail(org, "u1")
    assert detail["user_id"] == "u1" and detail["age"] == 25
    assert detail["totals"] == {"events": 5, "sessions": 1, "avg_session_duration": 90.0, "features_used": 2}
    assert [t["feature_key"] for t in detail["top_features"]] == ["export", "search"]
    # newest first: the 12:00 visit, the 10:00-10:10 visit (no session id, 10 min apart), session s1
    assert [g["event_count"] for g in detail["timeline"]] == [1, 2, 2]
    assert detail["timeline"][2]["session_id"] == "s1"
    end_user(other_org, "theirs")
    for missing in ("theirs", "nobody"):
        with pytest.raises(NotFound):
            queries.end_user_detail(org, missing)


def _many_sessions(org, *, sessions, per_session):
    """One end user with `sessions` sessions of `per_session` events, a minute apart within a
    session and a day apart between sessions, inserted in one go."""
    import uuid as uuid_module
    from datetime import UTC, datetime

    from telemetry.models import UsageEvent

    f = feature(org, "app")
    user = end_user(org, "busy")
    base = datetime(2025, 1, 1, 9, tzinfo=UTC)
    UsageEvent.objects.bulk_create(
        UsageEvent(
            uuid=uuid_module.uuid4(),
            organization=org,
            feature=f,
            end_user=user,
            session_id=f"s{n:03d}",
            timestamp=base + timedelta(days=n, minutes=i),
        )
        for n in range(sessions)
        for i in range(per_session)
    )
    return user


def test_timeline_pages_through_every_event(org):
    """3,000 events in 60 sessions: the timeline comes 200 events at a time, newest first,
    and walking `timeline_next` reaches every event and every session exactly once."""
    from analytics.queries.end_user import TIMELINE_LIMIT

    _many_sessions(org, sessions=60, per_session=50)
    detail = queries.end_user_detail(org, "busy")
    assert detail["totals"]["events"] == 3000 and detail["totals"]["sessions"] == 60
    assert detail["timeline_events"] == TIMELINE_LIMIT and detail["timeline_next"]
    assert [g["session_id"] for g in detail["timeline"]] == ["s059", "s058", "s057", "s056"]
    assert _walk_timeline(org) == (15, 3000, 60)


def test_timeline_session_cut_by_a_page_goes_on_marked_continued(org):
    _many_sessions(org, sessions=20, per_session=30)  # 600 events: pages end mid-session
    assert _walk_timeline(org) == (3, 600, 20)
    second = queries.end_user_timeline(
        org, "busy", before=uuid.UUID(queries.end_user_detail(org, "busy")["timeline_next"])
    )
    assert second["timeline"][0]["continued"] and not any(g["continued"] for g in second["timeline"][1:])


def _walk_timeline(org):
    """(pages, distinct events, distinct sessions) seen by following `timeline_next`."""
    seen, sessions, before, pages = [], set(), None, 0
    while True:
        page = queries.end_user_timeline(org, "busy", before=before)
        pages += 1
        for group in page["timeline"]:
            # A session cut by the page edge goes on at the top of the next page, marked so.
            assert group["continued"] == (group["session_id"] in sessions)
            sessions.add(group["session_id"])
            seen += [e["uuid"] for e in group["events"]]
        if page["timeline_next"] is None:
            break
        before = uuid.UUID(page["timeline_next"])
    assert len(seen) == len(set(seen))
    return pages, len(seen), len(sessions)


def test_timeline_refuses_an_event_of_someone_else(org, other_org):
    _many_sessions(org, sessions=1, per_session=3)
    theirs = event(other_org, feature(other_org, "x"), end_user(other_org, "busy"), at("2025-01-01", "09:00:00"))
    with pytest.raises(DomainError) as refused:
        queries.end_user_timeline(org, "busy", before=theirs.uuid)
    assert refused.value.status_code == 400 and "before" in refused.value.errors


def test_retention(org):
    f = feature(org, "app")
    # Cohort week of Mon 2025-03-03: a (days 0,1,7,30), b (day 0 only); next week: c (days 0, 7)
    a = end_user(org, "a", first_seen=at("2025-03-03", "09:00:00"))
    b = end_user(org, "b", first_seen=at("2025-03-04", "09:00:00"))
    c = end_user(org, "c", first_seen=at("2025-03-10", "09:00:00"))
    for day in ("2025-03-03", "2025-03-04", "2025-03-10", "2025-04-02"):
        event(org, f, a, at(day, "09:00:00"))
    event(org, f, b, at("2025-03-04", "09:00:00"))
    event(org, f, c, at("2025-03-10", "09:00:00"))
    event(org, f, c, at("2025-03-17", "23:59:59"))
    rollup.rollup_range(date(2025, 3, 3), date(2025, 4, 2), org)
    result = queries.retention(org, weeks=6, end=date(2025, 4, 9))
    cohorts = {c["cohort_start"]: c for c in result["cohorts"]}
    assert len(result["cohorts"]) == 6
    first = cohorts[date(2025, 3, 3)]
    assert (first["size"], first["d1"], first["d7"], first["d30"]) == (2, 50.0, 50.0, 50.0)
    assert first["weeks"] == [100.0, 50.0, 0.0, 0.0, 50.0, 0.0]
    second = cohorts[date(2025, 3, 10)]
    assert (second["size"], second["d1"], second["d7"]) == (1, 0.0, 100.0)
    assert second["d30"] is None  # Mar 16 + 30 is after Apr 9: not measurable yet
    assert second["weeks"] == [100.0, 100.0, 0.0, 0.0, 0.0]
    assert cohorts[date(2025, 3, 31)]["size"] == 0


def test_empty_retention_cohort_has_no_percentages(org):
    """A week in which nobody was first seen has no retention: null, never 0 %."""
    end_user(org, "a", first_seen=at("2025-03-03", "09:00:00"))
    result = queries.retention(org, weeks=6, end=date(2025, 4, 9))
    empty = {c["cohort_start"]: c for c in result["cohorts"]}[date(2025, 3, 10)]
    assert empty["size"] == 0
    assert (empty["d1"], empty["d7"], empty["d30"]) == (None, None, None)
    assert empty["weeks"] and set(empty["weeks"]) == {None}


def test_funnel_ordered_within_window(org):
    search, cart, buy = feature(org, "search"), feature(org, "cart"), feature(org, "buy")
    users = [end_user(org, f"f{i}") for i in range(5)]
    # f0: full path in order. f1: search, cart. f2: cart before search (out of order).
    # f3: search then cart 10 days later (outside the 7-day window). f4: search + a "buy" event type.
    event(org, search, users[0], at("2025-03-01", "10:00:00"))
    event(org, cart, users[0], at("2025-03-01", "10:05:00"))
    event(org, buy, users[0], at("2025-03-02", "10:00:00"))
    event(org, search, users[1], at("2025-03-01", "11:00:00"))
    event(org, cart, users[1], at("2025-03-03", "11:00:00"))
    event(org, cart, users[2], at("2025-03-01", "09:00:00"))
    event(org, search, users[2], at("2025-03-01", "10:00:00"))
    event(org, search, users[3], at("2025-03-01", "10:00:00"))
    event(org, cart, users[3], at("2025-03-11", "10:00:01"))
    event(org, search, users[4], at("2025-03-01", "10:00:00"))
    event(org, search, users[4], at("2025-03-01", "10:01:00"), event_type="checkout")
    event(org, search, None, at("2025-03-01", "10:00:00"))  # anonymous: not counted
    result = queries.funnel(org, steps=["search", "cart", "buy"], window_days=7, start=D1, end=D3)
    assert [(s["key"], s["users"]) for s in result["steps"]] == [("search", 5), ("cart", 2), ("buy", 1)]
    assert [s["conversion_from_prev"] for s in result["steps"]] == [100.0, 40.0, 50.0]
    assert [s["conversion_from_start"] for s in result["steps"]] == [100.0, 40.0, 20.0]
    by_type = queries.funnel(org, steps=["search", "checkout"], window_days=1, start=D1, end=D1)
    assert [s["users"] for s in by_type["steps"]] == [5, 1]
    # Nobody reaches "nothing": what follows it converts from nobody, which is no 0 % but null,
    # and a funnel nobody enters has no conversion at all (README: nothing behind it, null).
    stuck = queries.funnel(org, steps=["search", "nothing", "cart"], window_days=7, start=D1, end=D3)
    assert [s["conversion_from_prev"] for s in stuck["steps"]] == [100.0, 0.0, None]
    assert [s["conversion_from_start"] for s in stuck["steps"]] == [100.0, 0.0, 0.0]
    empty = queries.funnel(org, steps=["nothing", "search"], window_days=7, start=D1, end=D3)
    assert [(s["users"], s["conversion_from_prev"], s["conversion_from_start"]) for s in empty["steps"]] == [
        (0, None, None),
        (0, None, None),
    ]
    assert by_type["steps"][1]["kind"] == "event_type"
    wide = queries.funnel(org, steps=["search", "cart"], window_days=14, start=D1, end=D1)
    assert [s["users"] for s in wide["steps"]] == [5, 3]


def test_dashboard_cache_follows_the_rollup_generation(org, rolled, django_assert_num_queries):
    first = queries.usage_summary(org, D1, D3)
    with django_assert_num_queries(0):
        assert queries.usage_summary(org, D1, D3) == first
    event(org, rolled["search"], rolled["u3"], at("2025-03-02", "12:00:00"))
    assert queries.usage_summary(org, D1, D3)["total_events"]["value"] == 6  # until the next rollup
    rollup.rollup_day(D2, org)
    assert queries.usage_summary(org, D1, D3)["total_events"]["value"] == 7
    assert queries.usage_summary.uncached(org, D1, D3)["total_events"]["value"] == 7


def test_cache_can_be_switched_off(org, rolled, settings):
    settings.ANALYTICS_CACHE_TTL = 0
    queries.feature_usage(org, D1, D3)
    event(org, rolled["search"], None, at("2025-03-02", "12:00:00"))
    rollup.rollup_day(D2, org)
    assert queries.feature_usage(org, D1, D3)[0]["events"] == 5


def test_cache_key_ignores_empty_filters(org, rolled, django_assert_num_queries):
    queries.usage_summary(org, D1, D3)
    queries.timeseries(org, metric="events", interval="day", start=D1, end=D3)
    with django_assert_num_queries(0):
        queries.usage_summary(org, D1, D3, filters={"feature": None, "age": None, "gender": None})
        queries.timeseries(org, metric="events", interval="day", start=D1, end=D3, feature=None, age=None)
