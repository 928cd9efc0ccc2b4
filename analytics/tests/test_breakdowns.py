"""Breakdowns against the hand-counted fixture of `filters_data` (see its table), the top 10
and "other", the 400s, and pinned query counts."""

import dataclasses

import pytest
from django.conf import settings
from django.db.models import F
from django.db.models.functions import Collate

from analytics import rollup
from analytics.models import DailyFeatureUsage
from analytics.queries import active
from analytics.queries.breakdowns import BREAKDOWN_LIMIT, sources, totals
from analytics.queries.breakdowns.sources import in_codepoint_order
from core.days import today
from telemetry.models import Account, EndUser

from .conftest import shared_admin_fixture
from .factories import at, end_user, event, feature
from .filters_data import day_of

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"


admin_user = shared_admin_fixture("data", "filters_shared")


@pytest.fixture
def data(filters_shared, org):
    return filters_shared[1]


def parts(rows):
    return {row["key"]: row["value"] for row in rows}


def test_summary_breakdowns_by_hand(analyst_client, data):
    def split(query):
        body = analyst_client.get(f"{BASE}/usage-summary?{query}").json()["breakdown"]
        return parts(body["events"]), parts(body["active_users"])

    # The anonymous search has no person: it is in no age band or gender.
    assert split("breakdown=gender") == ({"F": 7, "M": 2, "O": 2}, {"F": 2, "M": 1, "O": 1})
    assert split("breakdown=age") == ({"<18": 4, "18-40": 5, ">40": 2}, {"<18": 1, "18-40": 2, ">40": 1})
    assert split("breakdown=feature") == ({"search": 7, "export": 5}, {"search": 4, "export": 4})
    assert split("breakdown=user.plan") == ({"pro": 6, "free": 5}, {"pro": 2, "free": 2})
    assert split("breakdown=event_type") == ({"interaction": 10, "click": 2}, {"interaction": 3, "click": 1})
    assert split("breakdown=event.source") == ({"(none)": 10, "email": 2}, {"(none)": 3, "email": 1})
    # With filters: F only, by plan; export only, by gender; a user property filter, by age.
    assert split("breakdown=user.plan&gender=F") == ({"pro": 4, "free": 3}, {"pro": 1, "free": 1})
    assert split("breakdown=gender&feature=export") == ({"F": 3, "M": 1, "O": 1}, {"F": 2, "M": 1, "O": 1})
    assert split("breakdown=age&user.plan=pro") == ({"<18": 4, ">40": 2}, {"<18": 1, ">40": 1})


def test_account_breakdowns_by_hand(analyst_client, data):
    def split(query):
        body = analyst_client.get(f"{BASE}/usage-summary?{query}").json()["breakdown"]
        return parts(body["events"]), parts(body["active_users"])

    # acme: u1 4 + u3 2; globex: u2 2; u4 has no account: "(none)"; the anonymous search none.
    by_account = ({"acme": 6, "(none)": 3, "globex": 2}, {"acme": 2, "(none)": 1, "globex": 1})
    assert split("breakdown=account") == by_account
    assert split("breakdown=account&feature=export") == (
        {"acme": 2, "(none)": 2, "globex": 1},
        {"acme": 2, "(none)": 1, "globex": 1},
    )
    # A person filter beside it (the per-user rows): F is u1 (acme) and u4 (none).
    assert split("breakdown=account&gender=F") == ({"acme": 4, "(none)": 3}, {"acme": 1, "(none)": 1})
    assert split("breakdown=account&account=globex") == ({"globex": 2}, {"globex": 1})
    # Other dimensions under the account filter: acme's users by gender, by feature.
    assert split("breakdown=gender&account=acme") == ({"F": 4, "O": 2}, {"F": 1, "O": 1})
    assert split("breakdown=feature&account=acme") == ({"search": 4, "export": 2}, {"search": 2, "export": 2})
    assert split("breakdown=event_type&account=acme") == (
        {"interaction": 4, "click": 2},
        {"interaction": 1, "click": 1},
    )
    body = analyst_client.get(f"{BASE}/feature-usage?breakdown=account").json()
    rows = {r["feature_key"]: parts(r["breakdown"]) for r in body["results"]}
    assert rows == {"search": {"acme": 4, "globex": 1, "(none)": 1}, "export": {"acme": 2, "globex": 1, "(none)": 2}}
    # Daily users per account on T-7 (from the account rollups): u1, u3 (acme) and u4 (none).
    daily = analyst_client.get(f"{BASE}/timeseries?breakdown=account&metric=active_users&start={day_of(7)}").json()
    assert {s["key"]: s["points"][0]["value"] for s in daily["series"]} == {"acme": 2, "(none)": 1, "globex": 0}
    events = analyst_client.get(f"{BASE}/timeseries?breakdown=account&start={day_of(14)}&end={today()}").json()
    totals = {s["key"]: sum(p["value"] for p in s["points"]) for s in events["series"]}
    assert totals == {"acme": 6, "(none)": 3, "globex": 2}


def test_timeseries_breakdown_shape_and_points(analyst_client, data):
    body = analyst_client.get(f"{BASE}/timeseries?breakdown=gender&start={day_of(14)}&end={today()}").json()
    assert set(body) == {"metric", "interval", "start", "end", "breakdown", "series", "anonymous_events"}
    assert body["anonymous_events"] == 1  # the anonymous search on T-1
    assert body["breakdown"] == "gender" and [s["key"] for s in body["series"]] == ["F", "M", "O"]
    female = {p["date"]: p["value"] for p in body["series"][0]["points"]}
    assert len(female) == 15
    # F: u1 2 events on T-14, 1 on T-13, 1 on T-7; u4 1 on T-7, T-6, T-5
    assert female[day_of(14).isoformat()] == 2 and female[day_of(7).isoformat()] == 2
    assert sum(female.values()) == 7
    # Daily users per gender (from the segment rollups): on T-7 u1 and u4 (F) and u3 (O).
    daily = analyst_client.get(f"{BASE}/timeseries?breakdown=gender&metric=active_users&start={day_of(7)}").json()
    on_t7 = {s["key"]: s["points"][0]["value"] for s in daily["series"]}
    assert on_t7 == {"F": 2, "M": 0, "O": 1}
    users = analyst_client.get(f"{BASE}/timeseries?breakdown=feature&metric=active_users&interval=week").json()
    assert {s["key"] for s in users["series"]} == {"search", "export"}
    plain = analyst_client.get(f"{BASE}/timeseries?metric=active_users&interval=week").json()["points"]
    assert [p["date"] for p in users["series"][0]["points"]] == [p["date"] for p in plain]
    csv = analyst_client.get(f"{BASE}/timeseries?breakdown=age&format=csv&start={day_of(1)}&end={today()}")
    assert csv.content.decode().splitlines()[0] == "date,key,value"


def test_feature_usage_breakdown_by_hand(analyst_client, data):
    body = analyst_client.get(f"{BASE}/feature-usage?breakdown=gender").json()
    assert body["breakdown"] == "gender"
    rows = {r["feature_key"]: parts(r["breakdown"]) for r in body["results"]}
    # search: u1 3 (F), u2 1 (M), u3 1 (O), u4 1 (F); export: u1 1, u4 2 (F), u2 1 (M), u3 1 (O)
    assert rows == {"search": {"F": 4, "M": 1, "O": 1}, "export": {"F": 3, "M": 1, "O": 1}}
    by_type = analyst_client.get(f"{BASE}/feature-usage?breakdown=event_type").json()["results"]
    assert {r["feature_key"]: parts(r["breakdown"]) for r in by_type} == {
        "search": {"interaction": 6, "click": 1},
        "export": {"interaction": 4, "click": 1},
    }


def test_top_ten_and_other(analyst_client, org):
    """Twelve features with 1…12 events: the ten busiest, then "other" = 2 + 1."""
    when = at(today().isoformat(), "08:00:00")
    person = end_user(org, "p1", age=30, gender="M", first_seen=when)
    for n in range(1, 13):
        feat = feature(org, f"f{n:02d}")
        for _ in range(n):
            event(org, feat, person, when)
    rollup.rollup_day(today(), org)
    split = analyst_client.get(f"{BASE}/usage-summary?breakdown=feature").json()["breakdown"]
    rows = split["events"]
    assert [r["key"] for r in rows] == [f"f{n:02d}" for n in range(12, 2, -1)] + ["other"]
    assert rows[-1]["value"] == 3
    # One user everywhere: ten features with one user each (ties by key), and "other" is
    # that same user once, not once per remaining feature.
    users = split["active_users"]
    assert users == [{"key": f"f{n:02d}", "value": 1} for n in range(1, 11)] + [{"key": "other", "value": 1}]
    series = analyst_client.get(f"{BASE}/timeseries?breakdown=feature&start={today()}&end={today()}").json()
    assert series["series"][-1] == {"key": "other", "points": [{"date": today().isoformat(), "value": 3}]}


def test_a_value_named_other_goes_into_the_rest_once(analyst_client, org):
    """Twelve occupations (1…12 events a person), one of them literally "other" (7 events),
    and as many event types and feature keys: "other" is never a top value beside the rest
    under the same name (the demo's `user.occupation` drew it twice and lost the real one's
    events); it is in the rest, counted once, and every event is in exactly one series."""
    when = at(today().isoformat(), "08:00:00")
    names = [f"v{n:02d}" for n in range(1, 13)]
    names[6] = "other"
    for n, name in enumerate(names, start=1):
        person = end_user(org, f"p{n}", first_seen=when, properties={"occupation": name})
        feat = feature(org, name)
        for _ in range(n):
            event(org, feat, person, when, event_type=name)
    rollup.rollup_day(today(), org)
    # The top ten are 12…2 events without the 7 of "other"; the rest is "other"'s 7 and 1.
    expected_top = [names[n - 1] for n in range(12, 0, -1) if names[n - 1] != "other"][:10]
    for dimension in ("user.occupation", "event_type", "feature"):
        split = analyst_client.get(f"{BASE}/usage-summary?breakdown={dimension}").json()["breakdown"]
        assert [r["key"] for r in split["events"]] == [*expected_top, "other"], dimension
        assert split["events"][-1]["value"] == 7 + 1, dimension
        assert [r["key"] for r in split["active_users"]][-1] == "other", dimension
        assert split["active_users"][-1]["value"] == 2, dimension
        assert sum(r["value"] for r in split["active_users"]) == 12, dimension
        series = analyst_client.get(f"{BASE}/timeseries?breakdown={dimension}&start={today()}&end={today()}").json()[
            "series"
        ]
        keys = [s["key"] for s in series]
        assert keys.count("other") == 1 and len(keys) == 11, (dimension, keys)
        assert sum(s["points"][0]["value"] for s in series) == sum(range(1, 13)), dimension


def test_each_features_split_keeps_the_top_values_and_sums_the_rest(analyst_client, org):
    """Twelve accounts a1…a12 with 1…12 users, each user one "search" event and account aN's
    first user also one "export": every feature's split shows the ten busiest accounts over
    all features, the rest of its events as "other" (the database folds them)."""
    when = at(today().isoformat(), "08:00:00")
    search, export = feature(org, "search"), feature(org, "export")
    for n in range(1, 13):
        account = Account.objects.create(organization=org, external_id=f"a{n:02d}")
        for i in range(n):
            person = end_user(org, f"a{n:02d}-u{i}", account=account, first_seen=when)
            event(org, search, person, when)
            if i == 0:
                event(org, export, person, when)
    # A user without an account ("(none)", past the top ten) and an anonymous event (no
    # account at all: in no value, "other" included).
    loner = end_user(org, "loner", first_seen=when)
    event(org, search, loner, when)
    event(org, search, None, when)
    rollup.rollup_day(today(), org)
    rows = analyst_client.get(f"{BASE}/feature-usage?breakdown=account").json()["results"]
    split = {r["feature_key"]: [(p["key"], p["value"]) for p in r["breakdown"]] for r in rows}
    top = [f"a{n:02d}" for n in range(12, 2, -1)]
    assert split["search"] == [(key, int(key[1:])) for key in top] + [("other", 2 + 1 + 1)]
    assert split["export"] == [(key, 1) for key in top] + [("other", 2)]
    # Under a feature filter the top accounts are that feature's (ties by id).
    rows = analyst_client.get(f"{BASE}/feature-usage?breakdown=account&feature=export").json()["results"]
    assert [(p["key"], p["value"]) for p in rows[0]["breakdown"]] == [(f"a{n:02d}", 1) for n in range(1, 11)] + [
        ("other", 2)
    ]
    # Eleven users without an account: "(none)" is among the top ten, the rest sums the others.
    for i in range(10):
        event(org, search, end_user(org, f"loner-{i}", first_seen=when), when)
    rollup.rollup_day(today(), org)
    rows = analyst_client.get(f"{BASE}/feature-usage?breakdown=account").json()["results"]
    search_split = next(r["breakdown"] for r in rows if r["feature_key"] == "search")
    assert [(p["key"], p["value"]) for p in search_split] == [
        *[(f"a{n:02d}", n) for n in range(12, 10, -1)],
        ("(none)", 11),
        *[(f"a{n:02d}", n) for n in range(10, 3, -1)],
        ("other", 3 + 2 + 1),
    ]


def test_a_dimension_past_the_fetched_values_totals_its_rest_in_sql(analyst_client, org, monkeypatch):
    """More values than are pulled to rank (a free-form property): the top values are the
    same and "other" is summed by the database from everything past them."""
    monkeypatch.setattr(totals, "TOTALS_FETCHED", BREAKDOWN_LIMIT + 1)
    when = at(today().isoformat(), "08:00:00")
    person = end_user(org, "p1", first_seen=when)
    for n in range(1, 15):
        feat = feature(org, f"f{n:02d}")
        for _ in range(n):
            event(org, feat, person, when)
    rollup.rollup_day(today(), org)
    rows = analyst_client.get(f"{BASE}/usage-summary?breakdown=feature").json()["breakdown"]["events"]
    assert [r["key"] for r in rows] == [f"f{n:02d}" for n in range(14, 4, -1)] + ["other"]
    assert rows[-1]["value"] == 4 + 3 + 2 + 1


def test_other_users_are_distinct_across_the_rest(analyst_client, org):
    """Twelve event types, t01 and t02 sent by 1 and 2 users, tNN by NN + 2 users from t03
    on; one more user sends both t01 and t02: "other" (t01 and t02) holds 1 + 2 + 1 distinct
    users, not 1 + 2 + 2, and 5 events."""
    when = at(today().isoformat(), "08:00:00")
    feat = feature(org, "search")
    for n in range(1, 13):
        for i in range(n if n < 3 else n + 2):
            event(org, feat, end_user(org, f"t{n:02d}-u{i}", first_seen=when), when, event_type=f"t{n:02d}")
    both = end_user(org, "both", first_seen=when)
    for kind in ("t01", "t02"):
        event(org, feat, both, when, event_type=kind)
    rollup.rollup_day(today(), org)
    split = analyst_client.get(f"{BASE}/usage-summary?breakdown=event_type").json()["breakdown"]
    assert [r["key"] for r in split["events"]] == [f"t{n:02d}" for n in range(12, 2, -1)] + ["other"]
    assert split["events"][-1]["value"] == 1 + 2 + 2
    assert split["active_users"][:2] == [{"key": "t12", "value": 14}, {"key": "t11", "value": 13}]
    assert split["active_users"][-1] == {"key": "other", "value": 4}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("breakdown=colour", "Choose"),
        ("breakdown=user.", "property name"),
        ("breakdown=event.a..b", "property name"),
    ],
)
@pytest.mark.parametrize("endpoint", ["usage-summary", "timeseries", "feature-usage"])
def test_bad_breakdowns_are_400(analyst_client, data, endpoint, query, message):
    response = analyst_client.get(f"{BASE}/{endpoint}?{query}")
    assert response.status_code == 400 and message in response.json()["errors"]["breakdown"][0]


@pytest.mark.parametrize(
    ("query", "count"),
    [
        # the summary (3 queries), then one pass over the values for events ("other" is the
        # sum of the rest), and for users one query over the end users (a person dimension)
        # or one pass (distinct users of "other": one query more, only when there is a rest);
        # a person dimension's events without an end user, one query more (none under a
        # person filter)
        ("usage-summary?breakdown=gender", 3 + 1 + 1 + 1),
        ("usage-summary?breakdown=event.source&gender=F", 3 + 1 + 1),
        ("timeseries?breakdown=user.plan", 3 + 1),  # top values, their points, other's points
        ("feature-usage?breakdown=age", 1 + 1 + 2 + 1),  # the usage table, its stickiness, top values, every feature's
        ("usage-summary?breakdown=account", 3 + 1 + 1 + 1),
        ("timeseries?breakdown=account&metric=active_users", 3 + 1),
        # the usage table, its stickiness, the top accounts, their ids, their rows per feature,
        # every feature's events of identified users (for "other"), the anonymous events
        ("feature-usage?breakdown=account", 1 + 1 + 4 + 1),
        # the account filter is looked up first (one query), then as above
        ("usage-summary?breakdown=account&account=acme", 1 + 3 + 1 + 1),
        ("timeseries?account=acme", 1 + 1),
        # the bounds (weekly totals), the edge days, the winners, their profiles, their top features
        ("top-users?account=acme", 1 + 5),
    ],
)
def test_breakdown_query_counts_are_pinned(analyst_client, data, django_assert_num_queries, query, count):
    # The user (with its organisation) comes first; the figures are cold.
    with django_assert_num_queries(1 + count):
        assert analyst_client.get(f"{BASE}/{query}").status_code == 200


def test_uncached_breakdowns_read_no_cached_ranking(org):
    """`.uncached` reads the rows as they are, the ranking included (it is cached under its
    SQL for the dashboard's several reads of it)."""
    when = at(today().isoformat(), "08:00:00")
    person = end_user(org, "p1", first_seen=when)
    search, export = feature(org, "search"), feature(org, "export")
    event(org, search, person, when)
    event(org, search, person, when)
    event(org, export, person, when)
    rollup.rollup_day(today(), org)
    args = {"dimension": "feature", "start": today(), "end": today()}
    assert [r["key"] for r in totals.breakdown_totals(org, **args)] == ["search", "export"]
    DailyFeatureUsage.objects.filter(organization=org, feature=export).update(event_count=5)
    assert [r["key"] for r in totals.breakdown_totals.uncached(org, **args)] == ["export", "search"]


def _traits_given(analyst_client, org, traits_by_user):
    """Profile properties added to the fixture's users, the days rolled up again; returns
    the summary's events under a query string."""
    for external_id, traits in traits_by_user.items():
        user = EndUser.objects.get(organization=org, external_id=external_id)
        user.properties = {**user.properties, **traits}
        user.save(update_fields=["properties"])
    rollup.rollup_range(day_of(20), today(), org)

    def events(query):
        return analyst_client.get(f"{BASE}/usage-summary?{query}").json()["total_events"]["value"]

    return events


def test_boolean_and_number_traits_filter_and_break_down_as_json_says_them(analyst_client, data, org):
    """QA pass 3, F11: on SQLite `user.beta=true` matched nobody and `user.beta=1` matched,
    and the breakdown said "1": the rollup read booleans as 1/0 where PostgreSQL says true."""
    events = _traits_given(analyst_client, org, {"u1": {"beta": True, "seats": 5}, "u3": {"beta": False, "seats": 2.5}})
    u1_only = events("user.plan=pro&age=<18")
    assert u1_only and events("user.beta=true") == u1_only
    assert events("user.seats=5") == u1_only
    assert events("user.beta=false") == events("user.plan=pro&age=>40")  # u3
    split = analyst_client.get(f"{BASE}/usage-summary?breakdown=user.beta").json()["breakdown"]
    assert set(parts(split["events"])) == {"true", "false", "(none)"}


def test_a_json_null_trait_is_no_value_to_the_filter_as_to_the_breakdown(analyst_client, data, org):
    # On SQLite `user.gone=null` matched a JSON null, which the breakdown shows as "(none)";
    # PostgreSQL's `->>` gives no text for it. A text "null" is a value on both.
    events = _traits_given(analyst_client, org, {"u1": {"gone": None}, "u3": {"gone": "null"}})
    u3_only = events("user.plan=pro&age=>40")
    assert u3_only and events("user.gone=null") == u3_only
    split = analyst_client.get(f"{BASE}/usage-summary?breakdown=user.gone").json()["breakdown"]
    assert parts(split["events"])["null"] == u3_only


TIED = ["b", "C", "a", "B", "_x", "Zed", "ärger", "Äb", "1st", "-dash", "A", "c"]


def _tied(org):
    """Twelve values with one user and one event each: as a user property, a feature and an
    event type."""
    when = at(today().isoformat(), "08:00:00")
    for n, name in enumerate(TIED):
        person = end_user(org, f"p{n}", first_seen=when, properties={"occupation": name})
        event(org, feature(org, name), person, when, event_type=name)
    rollup.rollup_day(today(), org)


def test_ties_rank_in_code_point_order_on_every_path(analyst_client, org):
    """Twelve values with one user and one event each, in mixed case, punctuation and
    accents: every breakdown (totals and series, events and users, a user property, event
    types and features) ranks the tie as Python sorts the values, so the summary's bars and
    the chart's lines are the same ten."""
    _tied(org)
    expected = [*sorted(TIED)[:BREAKDOWN_LIMIT], "other"]
    for dimension in ("user.occupation", "event_type", "feature"):
        split = analyst_client.get(f"{BASE}/usage-summary?breakdown={dimension}").json()["breakdown"]
        assert [r["key"] for r in split["events"]] == expected, dimension
        assert [r["key"] for r in split["active_users"]] == expected, dimension
        for metric, interval in (("events", "day"), ("active_users", "week")):
            query = f"breakdown={dimension}&metric={metric}&interval={interval}&start={today()}&end={today()}"
            series = analyst_client.get(f"{BASE}/timeseries?{query}").json()["series"]
            assert [s["key"] for s in series] == expected, (dimension, metric)


@pytest.mark.skipif(not settings.IS_POSTGRES, reason="ICU collations are PostgreSQL's")
def test_code_point_order_holds_under_a_linguistic_collation(org):
    """Under an en-US collation (the default of the compose file's PostgreSQL image) plain
    ORDER BY puts "a" before "B"; the rankings' tie-break stays in code-point order."""
    for n, name in enumerate(TIED):
        end_user(org, name, email=f"p{n}@customer.example")
    named = EndUser.objects.filter(organization=org).annotate(k=Collate(F("external_id"), "en-US-x-icu"))
    assert list(named.order_by("k").values_list("k", flat=True)) != sorted(TIED)
    assert list(named.order_by(in_codepoint_order("k")).values_list("k", flat=True)) == sorted(TIED)


@pytest.mark.skipif(not settings.IS_POSTGRES, reason="ICU collations are PostgreSQL's")
def test_rankings_cut_in_sql_break_ties_in_code_point_order_under_a_linguistic_collation(org, monkeypatch):
    """The rankings ordered and cut in the database (the values' figures, the event types'
    users) with their key under an en-US collation, as on a database created with it: the
    ties still fall in code-point order, as the rankings made in Python order them."""
    _tied(org)
    source = sources.source_for(org, "event_type", {}, users=False, per_feature=False)
    linguistic = dataclasses.replace(source, key=Collate(source.key, "en-US-x-icu"))
    assert [row["bkey"] for row in sources.ranked(org, linguistic, today(), today(), "events")] == sorted(TIED)
    monkeypatch.setattr(
        totals, "event_type_keyed", lambda rows: rows.annotate(bkey=Collate(F("event_type"), "en-US-x-icu"))
    )
    users = totals.event_type_user_totals(active.event_type_bitmasks(org, {}), today(), today())
    assert [row["key"] for row in users] == [*sorted(TIED)[:BREAKDOWN_LIMIT], "other"]
