"""Accounts list and detail against a hand-counted fixture. `end` is 2025-03-28, so the recent
4 weeks are 03-01 … 03-28 and the 4 weeks before 02-01 … 02-28.

    account   previous  recent  trend    at risk  users (recent)  features (recent)
    acme        10        7     -30.0    yes (the boundary)  2     2 (search, export)
    hooli      100       71     -29.0    no                   1     1 (search)
    globex      10       12     +20.0    no                   1     1 (export)
    initech      0        5     null     no                   1     1 (search)
    umbrella     0        0     null     no                   0     0
"""

import uuid
from datetime import date

import pytest

from analytics import queries, rollup
from analytics.active_days import block_of, day_bit
from analytics.models import AccountFeatureActiveDays
from analytics.queries.accounts import is_at_risk, trend_pct
from telemetry.models import Account, EndUser, UsageEvent

from .factories import at, end_user, feature

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics/accounts"
END = "end=2025-03-28"
PREVIOUS_DAY = "2025-02-10"
RECENT_DAY = "2025-03-20"
END_DAY = date(2025, 3, 28)


def _events(org, feat, user, day, n):
    UsageEvent.objects.bulk_create(
        UsageEvent(
            uuid=uuid.uuid4(),
            organization=org,
            feature=feat,
            end_user=user,
            event_type="interaction",
            session_id="",
            timestamp=at(day, f"12:{i // 60:02d}:{i % 60:02d}"),
        )
        for i in range(n)
    )


@pytest.fixture
def accounts(org):
    search, export, billing = feature(org, "search"), feature(org, "export"), feature(org, "billing")
    made = {
        key: Account.objects.create(organization=org, external_id=key, name=key.title() + " Inc")
        for key in ("acme", "hooli", "globex", "initech", "umbrella")
    }

    def person(external_id, account):
        return end_user(org, external_id, account=made[account])

    a1, a2 = person("a1", "acme"), person("a2", "acme")
    h1, g1, i1 = person("h1", "hooli"), person("g1", "globex"), person("i1", "initech")
    loner = end_user(org, "loner")  # no account: counted nowhere
    _events(org, search, a1, PREVIOUS_DAY, 10)
    _events(org, search, a1, RECENT_DAY, 4)
    _events(org, export, a2, RECENT_DAY, 3)
    _events(org, search, h1, PREVIOUS_DAY, 100)
    _events(org, search, h1, RECENT_DAY, 71)
    _events(org, export, g1, PREVIOUS_DAY, 10)
    _events(org, export, g1, RECENT_DAY, 12)
    _events(org, search, i1, RECENT_DAY, 5)
    _events(org, billing, loner, RECENT_DAY, 50)
    # Before both windows: ignored.
    _events(org, billing, a1, "2025-01-20", 9)
    for day in (date(2025, 1, 20), date(2025, 2, 10), date(2025, 3, 20)):
        rollup.rollup_day(day, org)
    return {"search": search, "export": export, "billing": billing}


def test_trend_and_at_risk_boundary():
    assert trend_pct(7, 10) == -30.0 and is_at_risk(7, 10)
    assert trend_pct(71, 100) == -29.0 and not is_at_risk(71, 100)
    assert trend_pct(699, 1000) == -30.1 and is_at_risk(699, 1000)
    assert trend_pct(5, 0) is None and not is_at_risk(5, 0)
    assert not is_at_risk(0, 0)


def test_account_list_hand_counted(analyst_client, accounts):
    response = analyst_client.get(f"{BASE}?{END}")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["count"] == 5
    rows = {r["account_id"]: r for r in data["results"]}
    assert [r["account_id"] for r in data["results"]] == ["hooli", "globex", "acme", "initech", "umbrella"]
    assert rows["acme"] | {"last_seen": None} == {
        "account_id": "acme",
        "name": "Acme Inc",
        "active_users": 2,
        "events": 7,
        "previous_events": 10,
        "features_used": 2,
        "trend_pct": -30.0,
        "at_risk": True,
        "last_seen": None,
        "feature_events": None,
    }
    assert (rows["hooli"]["trend_pct"], rows["hooli"]["at_risk"]) == (-29.0, False)
    assert (rows["globex"]["trend_pct"], rows["globex"]["at_risk"], rows["globex"]["events"]) == (20.0, False, 12)
    assert (rows["initech"]["trend_pct"], rows["initech"]["at_risk"]) == (None, False)
    assert rows["umbrella"] | {"last_seen": None} == {
        "account_id": "umbrella",
        "name": "Umbrella Inc",
        "active_users": 0,
        "events": 0,
        "previous_events": 0,
        "features_used": 0,
        "trend_pct": None,
        "at_risk": False,
        "last_seen": None,
        "feature_events": None,
    }


def test_account_list_filters_sorts_and_pages(analyst_client, accounts):
    def ids(query):
        response = analyst_client.get(f"{BASE}?{END}&{query}")
        assert response.status_code == 200, response.json()
        return [r["account_id"] for r in response.json()["results"]]

    assert ids("at_risk=true") == ["acme"]
    assert ids("at_risk=false&sort=account_id") == ["globex", "hooli", "initech", "umbrella"]
    assert ids("feature=export&sort=name") == ["acme", "globex"]
    # Under a feature, each account's events of it beside its totals (acme: 3 of its 7).
    using_export = analyst_client.get(f"{BASE}?{END}&feature=export&sort=name").json()["results"]
    assert [(r["events"], r["feature_events"]) for r in using_export] == [(7, 3), (12, 12)]
    assert {r["feature_events"] for r in analyst_client.get(f"{BASE}?{END}").json()["results"]} == {None}
    assert ids("feature=billing") == []
    assert ids("search=INI") == ["initech"]
    assert ids("sort=trend_pct") == ["acme", "hooli", "globex", "initech", "umbrella"]
    assert ids("sort=-trend_pct") == ["globex", "hooli", "acme", "initech", "umbrella"]
    assert ids("sort=-active_users&page_size=2") == ["acme", "globex"]
    page2 = analyst_client.get(f"{BASE}?{END}&sort=-active_users&page_size=2&page=2").json()
    assert [r["account_id"] for r in page2["results"]] == ["hooli", "initech"]
    assert page2["next"] and page2["previous"]


@pytest.mark.parametrize(
    "query", ["sort=bogus", "at_risk=maybe", "feature=nope", "page=0", "end=2025-13-01", "age=<18", "page_size=x"]
)
def test_account_list_bad_input_is_400(analyst_client, accounts, query):
    response = analyst_client.get(f"{BASE}?{query}")
    assert response.status_code == 400
    assert "errors" in response.json() or "detail" in response.json()


def test_an_end_in_the_future_is_refused_on_the_list_the_page_and_an_account(analyst_client, analyst_user, accounts):
    """A window ending after today has no usage yet: every account read as at risk, −100 %."""
    from datetime import timedelta

    from core.days import today

    from .test_pages import page_client

    tomorrow = (today() + timedelta(days=1)).isoformat()
    for url in (f"{BASE}?end={tomorrow}", f"{BASE}/acme?end={tomorrow}"):
        response = analyst_client.get(url)
        assert response.status_code == 400 and "at the latest" in response.json()["errors"]["end"][0], url
    assert analyst_client.get(f"{BASE}?end={today().isoformat()}").status_code == 200
    page = page_client(analyst_user).get(f"/accounts/?end={tomorrow}")
    assert page.status_code == 400 and "at the latest" in page.content.decode()


def test_account_detail_hand_counted(analyst_client, accounts):
    response = analyst_client.get(f"{BASE}/acme?{END}")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert (data["events"], data["previous_events"], data["trend_pct"], data["at_risk"]) == (7, 10, -30.0, True)
    assert [(u["user_id"], u["events"]) for u in data["users"]] == [("a1", 4), ("a2", 3)]
    assert [(f["feature_key"], f["events"], f["users"]) for f in data["features_adopted"]] == [
        ("search", 4, 1),
        ("export", 3, 1),
    ]
    assert [f["feature_key"] for f in data["features_not_adopted"]] == ["billing"]
    weekly = data["weekly"]
    assert len(weekly) == 8 and weekly[0]["week_start"] == "2025-02-01" and weekly[-1]["week_start"] == "2025-03-22"
    # 02-10 falls in the week of 02-08; 03-20 in the week of 03-15.
    assert {w["week_start"]: (w["events"], w["active_users"]) for w in weekly if w["events"]} == {
        "2025-02-08": (10, 1),
        "2025-03-15": (7, 2),
    }


def test_account_detail_queries_pinned(org, accounts, django_assert_num_queries):
    # the account, its events (account rollup), its people, its weekly users (bitmasks), the
    # features adopted (account rollup) and their users (per-feature bitmasks), every feature
    with django_assert_num_queries(7):
        queries.account_detail.uncached(org, "acme", end=date(2025, 3, 28))
    # the accounts, their events and last events (account rollups), their active users
    # (bitmasks), their features (the accounts' feature bitmasks, which also say who used one)
    with django_assert_num_queries(4):
        queries.account_list.uncached(org, end=date(2025, 3, 28))
    with django_assert_num_queries(5):  # and that feature's events per account
        queries.account_list.uncached(org, end=date(2025, 3, 28), feature=accounts["search"])


def _bits(org):
    return {
        (a.external_id, f.key, block): days
        for a, f, block, days in (
            (row.account, row.feature, row.block_start, row.active_days)
            for row in AccountFeatureActiveDays.objects.filter(organization=org).select_related("account", "feature")
        )
    }


def test_account_feature_bits_follow_the_account_rows(org, accounts):
    """The per-account feature bitmasks (the list's features used) hold a bit per account,
    feature and day with events: a re-roll keeps them, events that vanished clear their bit
    (an emptied row goes), a user who moved account moves the bit once the day is re-rolled."""
    recent, previous = date(2025, 3, 20), date(2025, 2, 10)
    expected = {
        ("acme", "search", block_of(previous)): day_bit(previous),
        ("acme", "search", block_of(recent)): day_bit(recent),
        ("acme", "export", block_of(recent)): day_bit(recent),
        ("hooli", "search", block_of(previous)): day_bit(previous),
        ("hooli", "search", block_of(recent)): day_bit(recent),
        ("globex", "export", block_of(previous)): day_bit(previous),
        ("globex", "export", block_of(recent)): day_bit(recent),
        ("initech", "search", block_of(recent)): day_bit(recent),
        ("acme", "billing", block_of(date(2025, 1, 20))): day_bit(date(2025, 1, 20)),
    }
    assert _bits(org) == expected
    rollup.rollup_day(recent, org)
    assert _bits(org) == expected
    # acme's export events of the recent day vanish; initech's user moves to globex.
    UsageEvent.objects.filter(
        organization=org, feature=accounts["export"], end_user__account__external_id="acme"
    ).delete()
    EndUser.objects.filter(organization=org, external_id="i1").update(account=Account.objects.get(external_id="globex"))
    rollup.rollup_day(recent, org)
    del expected[("acme", "export", block_of(recent))], expected[("initech", "search", block_of(recent))]
    expected[("globex", "search", block_of(recent))] = day_bit(recent)
    assert _bits(org) == expected
    listed = {r["account_id"]: r["features_used"] for r in queries.account_list.uncached(org, end=END_DAY)["results"]}
    assert listed == {"acme": 1, "hooli": 1, "globex": 2, "initech": 0, "umbrella": 0}


def test_other_organisations_account_is_404(analyst_client, accounts, other_org):
    Account.objects.create(organization=other_org, external_id="foreign", name="Foreign")
    assert analyst_client.get(f"{BASE}/foreign").status_code == 404
    assert analyst_client.get(f"{BASE}/nobody").status_code == 404
    assert "foreign" not in [r["account_id"] for r in analyst_client.get(BASE).json()["results"]]


def test_member_may_not_read_accounts(member_client, accounts):
    assert member_client.get(BASE).status_code == 403


@pytest.mark.parametrize(
    "query", ["start=2025-03-01", "age=<18", "gender=F", "account=acme", "segment=1", "user.plan=pro", "event.x=1"]
)
def test_accounts_refuse_the_filters_they_do_not_apply_by_name(analyst_client, accounts, query):
    name = query.split("=")[0]
    for url in (BASE, f"{BASE}/acme"):
        response = analyst_client.get(f"{url}?{query}")
        assert response.status_code == 400 and name in response.json()["errors"], (url, response.json())


def test_accounts_apply_end_and_feature(analyst_client, accounts):
    base = analyst_client.get(BASE).json()
    assert analyst_client.get(f"{BASE}?{END}").json() != base
    assert analyst_client.get(f"{BASE}?{END}&feature=export").json() != analyst_client.get(f"{BASE}?{END}").json()
    assert analyst_client.get(f"{BASE}/acme?{END}").json() != analyst_client.get(f"{BASE}/acme").json()
