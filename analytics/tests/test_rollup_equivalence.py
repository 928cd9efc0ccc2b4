"""Every analytics answer from the rollups equals the raw-event answer (`raw_reference`), on
the hand-checked fixture and on a randomized data set, filters included; the per-user rows
are idempotent, follow late and vanished events, and their reads are cached and pinned."""

import importlib
import random
import uuid
from collections import Counter
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection

from analytics import queries, rollup
from analytics.models import AccountFeatureActiveDays, DailyAccountUsage, DailyUserFeatureUsage, DailyUserUsage
from core.days import today
from telemetry.models import Account, EndUser, UsageEvent

from . import raw_reference as ref
from .conftest import D1, D2, D3
from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db

KPIS = ("total_events", "active_users", "features_tracked", "sessions", "avg_session_duration")


def randomized(org, *, seed=14, days=24, n_users=30, n_events=700, last=None):
    """Random users (some without age or gender), four features, anonymous events, sessions
    with and without ids, durations with and without values, over `days` days to `last`."""
    rng = random.Random(seed)
    last = last or date(2025, 4, 20)
    first = last - timedelta(days=days - 1)
    features = [feature(org, key) for key in ("search", "export", "share", "billing")]
    accounts = [Account.objects.create(organization=org, external_id=f"acct-{i}") for i in range(3)]
    people = []
    for i in range(n_users):
        seen = at(str(first + timedelta(days=rng.randrange(days))), f"{rng.randrange(24):02d}:00:00")
        people.append(
            end_user(
                org,
                f"r{i:02d}",
                age=rng.choice([None, 12, 17, 18, 30, 40, 41, 66]),
                gender=rng.choice(["", "F", "M", "O"]),
                account=rng.choice([*accounts, None]),
                first_seen=seen,
            )
        )
    rows = []
    for _ in range(n_events):
        person = rng.choice(people + [None] * 3)
        day = first + timedelta(days=rng.randrange(days))
        when = at(str(day), f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}")
        rows.append(
            UsageEvent(
                uuid=uuid.uuid4(),
                organization=org,
                feature=rng.choice(features),
                end_user=person,
                event_type=rng.choice(["interaction", "view"]),
                session_id=rng.choice(["", f"s{rng.randrange(40)}"]),
                session_duration=rng.choice([None, float(rng.randrange(600))]),
                timestamp=when,
            )
        )
    UsageEvent.objects.bulk_create(rows)
    rollup.rollup_range(first - timedelta(days=1), last, org)
    return {"first": first, "last": last, "features": features, "accounts": accounts}


def filter_sets(feat, account=None):
    """The filter sets compared; with `account`, the account filter alone (the account
    rollups), with a feature (its rows) and beside a person filter (the per-user rollups)."""
    with_account = (
        [{"account": account}, {"feature": feat, "account": account}, {"account": account.pk, "gender": "F"}]
        if account is not None
        else []
    )
    return with_account + [
        {},
        {"feature": feat},
        {"age": "18-40"},
        {"age": "<18"},
        {"gender": "F"},
        {"age": ">40", "gender": "M"},
        {"feature": feat, "gender": "F"},
        {"feature": feat.pk, "age": "18-40"},
    ]


def first_seen_of(org):
    return dict(EndUser.objects.filter(organization=org).values_list("id", "first_seen"))


def assert_summary_equal(org, rows, start, end, filters):
    answer = queries.usage_summary.uncached(org, start, end, filters=dict(filters))
    expected = ref.summary(rows, start, end, filters)
    got = {k: (answer[k]["value"], answer[k]["previous"]) for k in KPIS}
    assert got == expected, filters


def assert_series_equal(org, rows, start, end, filters):
    for metric in ("events", "active_users", "avg_session_duration"):
        for interval in ("day", "week"):
            args = {k: filters.get(k) for k in ("feature", "age", "gender", "account")}
            answer = queries.timeseries.uncached(org, metric=metric, interval=interval, start=start, end=end, **args)
            # An average is null where no event has a duration (never 0 s standing for none).
            shown = (lambda v: v is not None) if metric == "avg_session_duration" else bool
            got = {p["date"]: p["value"] for p in answer["points"] if shown(p["value"])}
            assert got == ref.series(rows, metric, interval, start, end, filters), (metric, interval, filters)


@pytest.fixture
def hand_checked(org, dataset):
    rollup.rollup_range(D1, D3, org)
    return dataset


def test_hand_checked_fixture_answers_equal_raw_events(org, hand_checked):
    rows = ref.load(org)
    for filters in filter_sets(hand_checked["search"]):
        assert_summary_equal(org, rows, D1, D3, filters)
        assert_summary_equal(org, rows, D2, D2, filters)
        assert_series_equal(org, rows, D1, D3, filters)
    top = queries.top_users.uncached(org, limit=10, start=D1, end=D3)
    expected = ref.users(rows, D1, D3, first_seen_of(org))
    assert [(u["user_id"], u["events"], u["top_feature"]) for u in top] == [
        (u["user_id"], u["events"], u["top_feature"]) for u in expected
    ]


@pytest.fixture
def random_data(org):
    return randomized(org)


def test_randomized_summary_and_series_equal_raw_events(org, random_data):
    rows = ref.load(org)
    first, last = random_data["first"], random_data["last"]
    mid = first + timedelta(days=12)
    for filters in filter_sets(random_data["features"][1], random_data["accounts"][0]):
        for start, end in ((first, last), (mid, last), (mid, mid)):
            assert_summary_equal(org, rows, start, end, filters)
        assert_series_equal(org, rows, first, last, filters)


def test_randomized_top_users_equal_raw_events(org, random_data):
    rows = ref.load(org)
    first, last = random_data["first"], random_data["last"]
    for start in (first, last - timedelta(days=6)):
        expected = ref.users(rows, start, last, first_seen_of(org))
        got = queries.top_users.uncached(org, limit=100, start=start, end=last)
        keys = ("user_id", "events", "avg_session_duration", "first_seen", "last_seen", "top_feature")
        assert [{k: u[k] for k in keys} for u in got] == [{k: u[k] for k in keys} for u in expected]


def test_randomized_account_filter_and_breakdown_equal_raw_events(org, random_data):
    """Top users and retention under the account filter, and the account breakdown's events
    and distinct users, against the raw events."""
    rows = ref.load(org)
    first, last = random_data["first"], random_data["last"]
    account = random_data["accounts"][1]
    mine = {"account": account}
    expected = ref.users(ref.matching(rows, mine), first, last, first_seen_of(org))
    got = queries.top_users.uncached(org, limit=100, start=first, end=last, filters=mine)
    assert [(u["user_id"], u["events"]) for u in got] == [(u["user_id"], u["events"]) for u in expected]
    cohorts = queries.retention.uncached(org, weeks=4, end=last, filters=mine)["cohorts"]
    members = {
        pk: seen for pk, seen in first_seen_of(org).items() if pk in set(account.end_users.values_list("pk", flat=True))
    }
    assert cohorts == ref.retention(ref.matching(rows, mine), members, 4, last)
    names = {a.pk: a.external_id for a in random_data["accounts"]}
    people = [r for r in rows if r.user is not None]
    for metric in ("events", "active_users"):
        got_split = queries.breakdown_totals.uncached(org, dimension="account", start=first, end=last, metric=metric)
        raw: dict[str, set | int] = {}
        for r in people:
            key = names.get(r.account, "(none)")
            if metric == "events":
                raw[key] = raw.get(key, 0) + 1
            else:
                raw.setdefault(key, set()).add(r.user)
        want = {k: v if isinstance(v, int) else len(v) for k, v in raw.items()}
        assert {row["key"]: row["value"] for row in got_split} == want, metric


def test_randomized_feature_usage_under_group_filters_equals_raw_events(org, random_data):
    """feature-usage under an account or a person segment reads the group rollups' feature
    rows: events and average daily users per feature as the raw events count them."""
    rows = ref.load(org)
    first, last = random_data["first"], random_data["last"]
    days = (last - first).days + 1
    for filters in ({"account": random_data["accounts"][2]}, {"gender": "F"}, {"age": "18-40", "gender": "M"}):
        chosen = [r for r in ref.matching(rows, filters) if first <= r.day <= last]
        want = {}
        for fid in {r.feature for r in chosen}:
            mine = [r for r in chosen if r.feature == fid]
            user_days = len({(r.day, r.user) for r in mine})
            want[fid] = (len(mine), round(user_days / days, 2))
        got = queries.feature_usage.uncached(org, first, last, filters=filters)
        assert {r["feature_id"]: (r["events"], r["avg_daily_active_users"]) for r in got if r["events"]} == want


def test_randomized_user_activity_equals_raw_events(org):
    last = today()
    randomized(org, seed=7, days=40, last=last)
    rows = ref.load(org)
    for days in (1, 7, 30):
        start = last - timedelta(days=days - 1)
        expected = ref.users(rows, start, last, first_seen_of(org))
        page = queries.user_activity_page.uncached(org, days=days, page_size=None)
        keys = ("user_id", "events", "avg_session_duration", "first_seen", "last_seen", "top_feature")
        assert page["count"] == len(expected)
        assert [{k: u[k] for k in keys} for u in page["results"]] == [{k: u[k] for k in keys} for u in expected]


def test_randomized_retention_equals_raw_events(org, random_data):
    rows = ref.load(org)
    for weeks, end in ((4, random_data["last"]), (3, random_data["last"] - timedelta(days=9))):
        got = queries.retention.uncached(org, weeks=weeks, end=end)["cohorts"]
        assert got == ref.retention(rows, first_seen_of(org), weeks, end)


def per_user_rows(org):
    fields = ("end_user_id", "date", "event_count", "sessions", "total_session_duration", "timed_events")
    days = sorted(DailyUserUsage.objects.filter(organization=org).values_list(*fields, "features_used"))
    features = sorted(DailyUserFeatureUsage.objects.filter(organization=org).values_list("feature_id", *fields))
    return days, features


def test_per_user_rollup_is_idempotent_and_updated_in_place(org, hand_checked):
    before = per_user_rows(org)
    ids = set(DailyUserUsage.objects.values_list("id", flat=True))
    stamps = dict(DailyUserFeatureUsage.objects.values_list("id", "computed_at"))
    rollup.rollup_range(D1, D3, org)
    assert per_user_rows(org) == before
    assert set(DailyUserUsage.objects.values_list("id", flat=True)) == ids
    # Rows whose figures did not change are not written again.
    assert dict(DailyUserFeatureUsage.objects.values_list("id", "computed_at")) == stamps
    # u1 on D1: two events, one session, two features; u2 on D1 and D2; u3 on D3.
    u1 = DailyUserUsage.objects.get(end_user=hand_checked["u1"], date=D1)
    assert (u1.event_count, u1.sessions, u1.features_used, u1.total_session_duration) == (2, 1, 2, 180)
    assert DailyUserUsage.objects.filter(organization=org).count() == 4
    assert DailyUserFeatureUsage.objects.filter(organization=org).count() == 5


def test_late_and_vanished_events_are_re_rolled(org, hand_checked, django_capture_on_commit_callbacks):
    from telemetry.models import DirtyDay

    late = event(org, hand_checked["export"], hand_checked["u2"], at("2025-03-01", "12:00:00"), session="s2")
    DirtyDay.objects.create(organization=org, date=D1)
    assert rollup.rollup_dirty() == 1
    u2 = DailyUserUsage.objects.get(end_user=hand_checked["u2"], date=D1)
    assert (u2.event_count, u2.sessions, u2.features_used) == (2, 1, 2)
    assert DailyUserFeatureUsage.objects.filter(end_user=hand_checked["u2"], date=D1).count() == 2
    late.delete()
    UsageEvent.objects.filter(end_user=hand_checked["u3"]).delete()
    rollup.rollup_range(D1, D3, org)
    assert DailyUserUsage.objects.get(end_user=hand_checked["u2"], date=D1).event_count == 1
    assert not DailyUserUsage.objects.filter(end_user=hand_checked["u3"]).exists()
    assert not DailyUserFeatureUsage.objects.filter(end_user=hand_checked["u3"]).exists()


def test_re_roll_writes_only_the_rows_that_changed(org, hand_checked):
    """A late event changes its (user, feature) row and its user's row, in place; every other
    per-user row of the day keeps its id and `computed_at` (neither rewritten nor replaced)."""
    pair_stamps = dict(DailyUserFeatureUsage.objects.values_list("id", "computed_at"))
    user_stamps = dict(DailyUserUsage.objects.values_list("id", "computed_at"))
    pair = DailyUserFeatureUsage.objects.get(end_user=hand_checked["u1"], feature=hand_checked["export"], date=D1)
    user = DailyUserUsage.objects.get(end_user=hand_checked["u1"], date=D1)
    event(org, hand_checked["export"], hand_checked["u1"], at("2025-03-01", "13:00:00"), session="late")
    rollup.rollup_day(D1, org)
    pairs_after = dict(DailyUserFeatureUsage.objects.values_list("id", "computed_at"))
    users_after = dict(DailyUserUsage.objects.values_list("id", "computed_at"))
    assert pairs_after.keys() == pair_stamps.keys() and users_after.keys() == user_stamps.keys()
    assert {pk for pk, stamp in pairs_after.items() if stamp != pair_stamps[pk]} == {pair.pk}
    assert {pk for pk, stamp in users_after.items() if stamp != user_stamps[pk]} == {user.pk}
    pair.refresh_from_db()
    assert (pair.event_count, pair.sessions) == (2, 2)


def test_other_organisations_rows_are_never_read(org, other_org, hand_checked):
    theirs = feature(other_org, "search")
    them = end_user(other_org, "u1", age=25, gender="F")
    event(other_org, theirs, them, at("2025-03-01", "11:00:00"))
    rollup.rollup_day(D1)
    summary = queries.usage_summary.uncached(org, D1, D1, filters={"gender": "F"})
    assert summary["total_events"]["value"] == 2
    assert [u["user_id"] for u in queries.top_users.uncached(other_org, start=D1, end=D1)] == ["u1"]
    assert queries.top_users.uncached(other_org, start=D1, end=D1)[0]["events"] == 1


@pytest.mark.parametrize(
    ("filters", "count"),
    [
        ({}, 3),  # totals, distinct users of both periods, features tracked
        ({"gender": "F"}, 3),  # the same from the per-user rows
        ({"feature": "search", "age": "18-40"}, 3),
    ],
)
def test_summary_query_counts_and_cache(org, hand_checked, django_assert_num_queries, filters, count):
    filters = {k: hand_checked[v] if k == "feature" else v for k, v in filters.items()}
    with django_assert_num_queries(count):
        queries.usage_summary(org, D1, D3, filters=filters)
    with django_assert_num_queries(0):  # filtered reads are cached like unfiltered ones
        queries.usage_summary(org, D1, D3, filters=filters)


def test_user_reads_query_counts(org, hand_checked, django_assert_num_queries):
    with django_assert_num_queries(5):  # weekly bounds, candidates' edge days, winners' figures, profiles, top features
        queries.top_users.uncached(org, limit=10, start=D1, end=D3)
    with django_assert_num_queries(1):  # one statement
        queries.retention.uncached(org, weeks=4, end=D3)
    with django_assert_num_queries(1):
        queries.timeseries.uncached(org, metric="active_users", interval="week", start=D1, end=D3, gender="M")


def account_rows(org):
    fields = ("date", "feature_id", "account_id", "event_count", "active_users", "sessions", "timed_events")
    return sorted(DailyAccountUsage.objects.filter(organization=org).values_list(*fields, "last_event_at"), key=repr)


def account_feature_bits(org):
    fields = ("block_start", "account_id", "feature_id", "active_days")
    return sorted(AccountFeatureActiveDays.objects.filter(organization=org).values_list(*fields))


def migrations_backfill():
    """What migrations 0007 (the account rows) and 0018 (their last events, the per-account
    feature bitmasks) build from the per-user rows of days rolled up before them."""
    editor = SimpleNamespace(connection=connection)
    AccountFeatureActiveDays.objects.all().delete()
    importlib.import_module("analytics.migrations.0007_account_rollup").backfill(None, editor)
    importlib.import_module("analytics.migrations.0018_account_feature_days").fill(None, editor)


def test_account_rollup_is_idempotent_follows_late_events_and_backfills(org, random_data):
    first, last = random_data["first"], random_data["last"]
    before = account_rows(org)
    assert before and any(row[2] is None for row in before)  # users without an account: NULL
    rollup.rollup_range(first, last, org)
    assert account_rows(org) == before
    # A late event of an account's user on the last day is re-rolled into its account row.
    account = random_data["accounts"][0]
    person = account.end_users.first()
    event(org, random_data["features"][0], person, at(str(last), "23:00:00"))
    rollup.rollup_day(last, org)
    row = DailyAccountUsage.objects.get(organization=org, date=last, feature__isnull=True, account=account)
    raw = UsageEvent.objects.filter(
        organization=org, end_user__account=account, timestamp__gte=at(str(last), "00:00:00")
    ).count()
    assert row.event_count == raw
    # The migrations' backfills rebuild the same rows from the per-user rows.
    after, bits = account_rows(org), account_feature_bits(org)
    assert bits
    migrations_backfill()
    assert account_rows(org) == after
    assert account_feature_bits(org) == bits


def test_randomized_account_detail_equals_raw_events(org):
    """One account's page (events of both windows, its people, weekly events and distinct
    users) against the raw events; the windows and 8 weeks span a longer randomized range."""
    data = randomized(org, seed=21, days=60, n_events=900)
    rows = ref.load(org)
    end = data["last"]
    recent_start = end - timedelta(days=27)
    previous_start = recent_start - timedelta(days=28)
    series_start = end - timedelta(days=55)
    for account in data["accounts"]:
        mine = ref.matching(rows, {"account": account})
        detail = queries.account_detail.uncached(org, account.external_id, end=end)
        recent = [r for r in mine if recent_start <= r.day <= end]
        assert detail["events"] == len(recent)
        assert detail["previous_events"] == len([r for r in mine if previous_start <= r.day < recent_start])
        people: dict[str, int] = {}
        for r in recent:
            people[r.external_id] = people.get(r.external_id, 0) + 1
        assert [(u["user_id"], u["events"]) for u in detail["users"]] == sorted(
            people.items(), key=lambda item: (-item[1], item[0])
        )
        assert detail["active_users"] == len(people)
        # Features adopted in the recent window, most events first: events and distinct users.
        feature_events = Counter(r.feature_key for r in recent)
        adopted = [
            (key, feature_events[key], len({r.user for r in recent if r.feature_key == key}))
            for key in sorted(feature_events, key=lambda key: (-feature_events[key], key))
        ]
        assert [(f["feature_key"], f["events"], f["users"]) for f in detail["features_adopted"]] == adopted
        both_windows = [r.ts for r in mine if previous_start <= r.day <= end]
        assert detail["last_seen"] == max(both_windows, default=None)
        weekly = []
        for i in range(8):
            lo = series_start + timedelta(days=7 * i)
            week = [r for r in mine if lo <= r.day <= lo + timedelta(days=6)]
            weekly.append((lo, len(week), len({r.user for r in week})))
        assert [(w["week_start"], w["events"], w["active_users"]) for w in detail["weekly"]] == weekly
