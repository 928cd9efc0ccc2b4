"""The events a person breakdown shows in no value (sent without an end user), from
`breakdown_anonymous_events`, in the API's breakdowns and on the dashboard, against a
hand-counted fixture:

    ann  age 20 (18-40)  F  plan=pro  acme    T-3 search, T-2 export
    bob  no age, gender or plan, account       T-3 search ×2 ("(none)" in every person breakdown)
    (anonymous)                               T-3 search, T-2 search, T-2 export; T-10 search

From T-5: 7 events, 3 anonymous (search 2, export 1); from T-12: 8, 4 anonymous."""

import re
from datetime import timedelta

import pytest

from analytics import rollup
from analytics.queries import breakdown_anonymous_events
from core.days import today
from telemetry.models import Account

from .factories import at, end_user, event, feature
from .test_pages import page_client

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"


def day(offset):
    return today() - timedelta(days=offset)


@pytest.fixture
def data(org):
    search, export = feature(org, "search"), feature(org, "export")
    acme = Account.objects.create(organization=org, external_id="acme", name="Acme")
    ann = end_user(org, "ann", age=20, gender="F", properties={"plan": "pro"}, account=acme)
    bob = end_user(org, "bob")
    for feat, person, offset in (
        (search, ann, 3),
        (export, ann, 2),
        (search, bob, 3),
        (search, bob, 3),
        (search, None, 3),
        (search, None, 2),
        (export, None, 2),
        (search, None, 10),
    ):
        event(org, feat, person, at(day(offset).isoformat()))
    rollup.rollup_range(day(12), today(), org)
    return {"search": search, "export": export}


@pytest.mark.parametrize("dimension", ["age", "gender", "account", "user.plan"])
def test_counts_the_events_without_an_end_user(org, data, dimension):
    def anonymous(start=5, **filters):
        return breakdown_anonymous_events(org, dimension=dimension, start=day(start), end=today(), filters=filters)

    assert anonymous() == 3
    assert anonymous(start=12) == 4
    assert anonymous(feature=data["search"].pk) == 2
    assert anonymous(feature=data["export"]) == 1
    # A person filter keeps no anonymous event.
    assert anonymous(gender="F") == 0


@pytest.mark.parametrize("dimension", ["feature", "event_type", "event.source"])
def test_is_none_for_a_dimension_every_event_has(org, data, dimension):
    assert breakdown_anonymous_events(org, dimension=dimension, start=day(5), end=today()) is None


def test_the_api_breakdowns_report_them(analyst_client, data):
    since = f"start={day(5)}"
    summary = analyst_client.get(f"{BASE}/usage-summary?{since}&breakdown=age").json()
    split = summary["breakdown"]
    assert split["anonymous_events"] == 3
    assert sum(part["value"] for part in split["events"]) + 3 == summary["total_events"]["value"] == 7
    series = analyst_client.get(f"{BASE}/timeseries?{since}&breakdown=gender&feature=search").json()
    assert series["anonymous_events"] == 2
    assert sum(p["value"] for s in series["series"] for p in s["points"]) == 3
    usage = analyst_client.get(f"{BASE}/feature-usage?{since}&breakdown=user.plan").json()
    assert usage["anonymous_events"] == 3
    assert (
        analyst_client.get(f"{BASE}/feature-usage?{since}&breakdown=account&gender=F").json()["anonymous_events"] == 0
    )
    for path in ("usage-summary", "timeseries", "feature-usage"):
        body = analyst_client.get(f"{BASE}/{path}?{since}&breakdown=feature").json()
        assert "anonymous_events" not in body and "anonymous_events" not in body.get("breakdown", {})


def test_the_dashboard_says_them(analyst_user, data):
    html = page_client(analyst_user).get(f"/?start={day(5)}&breakdown=account").content.decode()
    note = re.search(r'data-testid="anonymous-note">([^<]*)<', html)
    assert note and note.group(1).startswith("3 events sent without an end user have no account")
