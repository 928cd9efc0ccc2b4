"""No filter can be ignored again: every analytics endpoint is called with every filter of
DESIGN's set on a fixture built so that each filter matters (`filters_data`), and each answer
must differ from the unfiltered one or be a 400 naming that filter. Then the figures
themselves, counted by hand from the fixture."""

from datetime import timedelta

import pytest
from django.urls import URLPattern, get_resolver

from analytics import segments
from core.days import today
from core.query_params import FILTER_PREFIXES, FILTERS

from .conftest import shared_admin_fixture
from .filters_data import day_of
from .test_pages import page_client

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"
# Every GET figure endpoint of /api/v1/analytics (one end user's profile and the admin's
# aggregate/run are not figures), with what it needs besides filters.
ENDPOINTS = {
    "usage-summary": "",
    "feature-usage": "",
    "timeseries": "",
    "user-activity": "",
    "top-users": "",
    "retention": "",
    "funnel": "steps=search,export",
}
NOT_FIGURES = {"users/<path:external_id>", "aggregate/run"}
# The accounts endpoints apply `end` and `feature` and refuse the rest of the set by name; their
# fixture has accounts, this one has none (test_accounts.py walks them).
NOT_FIGURES |= {"accounts", "accounts/<path:account_id>"}
# (endpoint, filter) pairs answered with a 400 naming the filter, and why.
REFUSED = {
    ("funnel", "feature"): "a funnel's steps name its features",
    ("funnel", "feature_id"): "a funnel's steps name its features",
}


admin_user = shared_admin_fixture("data", "filters_shared")


@pytest.fixture
def data(filters_shared, org):
    fixture = dict(filters_shared[1])
    fixture["segment"] = segments.segment_create(org, name="Over 40", filters={"age": ">40"})
    return fixture


def filter_queries(data):
    """One query string per filter of DESIGN's set (prefixes by an example)."""
    return {
        "start": f"start={day_of(3)}",
        "end": f"end={day_of(3)}",
        "feature": "feature=search",
        "feature_id": f"feature_id={data['features']['search'].pk}",
        "age": "age=<18",
        "gender": "gender=F",
        "account": "account=acme",
        "segment": f"segment={data['segment'].pk}",
        "user.": "user.plan=pro",
        "event.": "event.plan=pro",
    }


def test_the_walk_covers_every_endpoint_and_filter(data):
    resolver = get_resolver()
    analytics = next(p for p in resolver.url_patterns if str(p.pattern) == "api/v1/")
    routes = set()
    for entry in analytics.url_patterns:
        if str(entry.pattern) == "analytics/":
            routes = {str(p.pattern) for p in entry.url_patterns if isinstance(p, URLPattern)}
    assert routes - NOT_FIGURES == set(ENDPOINTS)
    assert set(filter_queries(data)) == set(FILTERS) | set(FILTER_PREFIXES)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_every_filter_changes_the_answer_or_is_refused(analyst_client, data, endpoint):
    fixed = ENDPOINTS[endpoint]
    base = analyst_client.get(f"{BASE}/{endpoint}?{fixed}")
    assert base.status_code == 200, base.content
    ignored = []
    for name, query in filter_queries(data).items():
        response = analyst_client.get(f"{BASE}/{endpoint}?{fixed}&{query}")
        field = query.split("=")[0]
        if (endpoint, name) in REFUSED or name == "event.":
            assert response.status_code == 400, (name, response.content)
            assert field in response.json()["errors"], response.json()
        elif response.status_code != 200:
            ignored.append(f"{name}: {response.status_code} {response.content[:200]!r}")
        elif response.json() == base.json():
            ignored.append(f"{name}: same answer as unfiltered")
    assert not ignored, f"{endpoint} ignores: {ignored}"


def summary(client, query=""):
    body = client.get(f"{BASE}/usage-summary?{query}").json()
    return body["total_events"]["value"], body["active_users"]["value"]


@pytest.mark.parametrize(
    ("query", "events", "users"),
    [
        ("", 12, 4),
        ("feature=search", 7, 4),
        ("age=<18", 4, 1),
        ("age=18-40", 5, 2),
        ("gender=F", 7, 2),
        ("user.plan=pro", 6, 2),
        ("user.plan=free&gender=f", 3, 1),
        ("feature=export&gender=F", 3, 2),
        ("segment={segment}", 2, 1),  # age > 40: u3
        ("segment={segment}&gender=M", 0, 0),  # typed filters add to the segment's
        ("segment={segment}&age=<18", 4, 1),  # and a typed one replaces the segment's
        ("start={t3}", 2, 1),  # u2's export and the anonymous search
        ("account=acme", 6, 2),  # u1 and u3 (the account rollups)
        ("account=globex", 2, 1),
        ("account=acme&feature=export", 2, 2),
        ("account=acme&gender=F", 4, 1),  # u1 (a mix: the per-user rollups)
        ("account=acme&user.plan=free", 0, 0),
        ("account=globex&start={t3}", 1, 1),  # u2's export on T-2
    ],
)
def test_summary_by_hand(analyst_client, data, query, events, users):
    query = query.format(segment=data["segment"].pk, t3=day_of(3))
    assert summary(analyst_client, query) == (events, users)


def test_account_of_another_organisation_is_unknown(analyst_client, data):
    """ "initech" is another tenant's account: a 400, never its figures. That tenant's own
    "acme" is not ours either: account=acme answers our acme (6 events, not 3 more)."""
    for endpoint in ENDPOINTS:
        fixed = ENDPOINTS[endpoint]
        response = analyst_client.get(f"{BASE}/{endpoint}?{fixed}&account=initech")
        assert response.status_code == 400, (endpoint, response.content)
        assert response.json()["errors"]["account"] == ["Unknown account."]
    assert summary(analyst_client, "account=acme") == (6, 2)


def test_segment_with_an_account_by_hand(analyst_client, data):
    saved = segments.segment_create(data["users"]["u1"].organization, name="Acme", filters={"account": "acme"})
    assert saved.filters == {"account": "acme"}
    assert summary(analyst_client, f"segment={saved.pk}") == (6, 2)
    assert summary(analyst_client, f"segment={saved.pk}&account=globex") == (2, 1)  # a typed one wins
    refused = analyst_client.post(
        "/api/v1/org/segments", {"name": "Theirs", "filters": {"account": "initech"}}, format="json"
    )
    assert refused.status_code == 400 and "filters.account" in refused.json()["errors"]


def test_account_filter_by_hand(analyst_client, data):
    acme = analyst_client.get(f"{BASE}/top-users?account=acme").json()["results"]
    assert [(r["user_id"], r["events"]) for r in acme] == [("u1", 4), ("u3", 2)]
    globex = analyst_client.get(f"{BASE}/user-activity?account=globex").json()
    assert [r["user_id"] for r in globex["results"]] == ["u2"] and globex["count"] == 1
    rows = analyst_client.get(f"{BASE}/feature-usage?account=acme").json()["results"]
    assert {r["feature_key"]: r["events"] for r in rows} == {"search": 4, "export": 2}
    cohorts = analyst_client.get(f"{BASE}/retention?account=acme").json()["cohorts"]
    assert sum(c["size"] for c in cohorts) == 2
    # search → export within 7 days: u1 (T-14 → T-14) and u3 (T-7 → T-7) both convert.
    steps = analyst_client.get(f"{BASE}/funnel?steps=search,export&account=acme").json()["steps"]
    assert [s["users"] for s in steps] == [2, 2]
    # On T-7: u1's search and u3's search and export; daily users u1 and u3.
    for metric, value in (("events", 3), ("active_users", 2)):
        body = analyst_client.get(f"{BASE}/timeseries?account=acme&metric={metric}&start={day_of(7)}").json()
        assert body["points"][0]["value"] == value, metric
    points = analyst_client.get(f"{BASE}/timeseries?account=acme").json()["points"]
    assert sum(p["value"] for p in points) == 6
    weekly = analyst_client.get(f"{BASE}/timeseries?account=acme&metric=active_users&interval=week").json()
    assert max(p["value"] for p in weekly["points"]) == 2


def test_feature_usage_by_hand(analyst_client, data):
    rows = analyst_client.get(f"{BASE}/feature-usage?gender=F").json()["results"]
    by_key = {r["feature_key"]: r for r in rows}
    assert by_key["search"]["events"] == 4 and by_key["export"]["events"] == 3
    # search by u1 on 3 days and u4 on 1: 4 user-days over the 30 days of the range
    assert by_key["search"]["avg_daily_active_users"] == round(4 / 30, 2)
    only = analyst_client.get(f"{BASE}/feature-usage?feature=export").json()["results"]
    assert [(r["feature_key"], r["events"], r["share"]) for r in only] == [("export", 5, 100.0)]


def test_top_users_and_user_activity_by_hand(analyst_client, data):
    pro = analyst_client.get(f"{BASE}/top-users?user.plan=pro").json()["results"]
    assert [(r["user_id"], r["events"]) for r in pro] == [("u1", 4), ("u3", 2)]
    export = analyst_client.get(f"{BASE}/top-users?feature=export").json()["results"]
    assert [(r["user_id"], r["events"]) for r in export] == [("u4", 2), ("u1", 1), ("u2", 1), ("u3", 1)]
    adults = analyst_client.get(f"{BASE}/user-activity?age=18-40").json()
    assert sorted(r["user_id"] for r in adults["results"]) == ["u2", "u4"] and adults["count"] == 2
    recent = analyst_client.get(f"{BASE}/user-activity?start={day_of(3)}&end={today()}").json()
    assert [(r["user_id"], r["events"]) for r in recent["results"]] == [("u2", 1)]


def test_retention_by_hand(analyst_client, data):
    def sizes(query):
        body = analyst_client.get(f"{BASE}/retention?{query}").json()
        return sum(c["size"] for c in body["cohorts"]), body

    assert sizes("")[0] == 4
    assert sizes("gender=F")[0] == 2
    assert sizes(f"segment={data['segment'].pk}")[0] == 1
    # From the week of T-7: the cohorts of u3 and u4 (and u1, u2 when T-14 shares that week).
    start = day_of(7)
    total, body = sizes(f"start={start}")
    first_week = start - timedelta(days=start.weekday())
    assert body["cohorts"][0]["cohort_start"] == first_week.isoformat()
    assert total == sum(1 for offset in (14, 14, 7, 7) if day_of(offset) >= first_week)
    # Activity on export only: u1 (first day T-14) used export that day and never again.
    _, exports = sizes("user.plan=pro&feature=export&weeks=4")
    _, anything = sizes("user.plan=pro&weeks=4")
    assert exports["cohorts"] != anything["cohorts"]


@pytest.mark.parametrize(
    ("query", "counts"),
    [
        ("", [4, 3]),
        ("gender=F", [2, 2]),
        ("user.plan=free", [2, 1]),
        ("age=<18", [1, 1]),
        ("start={t6}", [1, 1]),  # only u4 first searches from T-6 on
    ],
)
def test_funnel_by_hand(analyst_client, data, query, counts):
    query = query.format(t6=day_of(6))
    body = analyst_client.get(f"{BASE}/funnel?steps=search,export&{query}").json()
    assert [s["users"] for s in body["steps"]] == counts


def test_timeseries_by_hand(analyst_client, data):
    for query, total in (("user.plan=pro", 6), ("gender=M", 2), ("feature=search&age=<18", 3), ("", 12)):
        points = analyst_client.get(f"{BASE}/timeseries?{query}").json()["points"]
        assert sum(p["value"] for p in points) == total, query
    weekly = analyst_client.get(f"{BASE}/timeseries?metric=active_users&interval=week&user.plan=free").json()
    assert max(p["value"] for p in weekly["points"]) <= 2


@pytest.mark.parametrize(
    ("endpoint", "count"),
    [
        ("usage-summary", 7),  # + the dimension rollup's check that it holds the user property
        ("feature-usage", 5),  # stickiness: distinct users per feature
        ("timeseries", 4),
        ("top-users", 6),
        ("user-activity", 6),  # the page grouped by user id, then its profiles
        ("retention", 4),
        ("funnel?steps=search,export", 5),  # + the steps resolved to feature keys or event types
    ],
)
def test_filtered_query_counts_are_pinned(analyst_client, data, django_assert_num_queries, endpoint, count):
    """Cold (nothing cached yet), with a segment, a typed filter and a user property: the
    user, the segment, the feature, then the figures."""
    joiner = "&" if "?" in endpoint else "?"
    query = f"{joiner}segment={data['segment'].pk}&gender=O&user.plan=pro&feature_id={data['features']['search'].pk}"
    if endpoint.startswith("funnel"):
        query = query.split("&feature_id")[0]
    with django_assert_num_queries(count):
        assert analyst_client.get(f"{BASE}/{endpoint}{query}").status_code == 200


# Every analytics GET besides the figures, with what it needs: a query parameter none of
# them knows is refused by all (core.strict_query), never read as "unfiltered".
OTHER_GETS = {"users/u1": "", "accounts": "", "accounts/acme": ""}
MISTYPED = "gendr=M&user_plan=pro&feature_key=search"


@pytest.mark.parametrize("endpoint", [*ENDPOINTS, *OTHER_GETS])
def test_every_endpoint_refuses_parameters_it_does_not_know(analyst_client, data, endpoint):
    fixed = ENDPOINTS.get(endpoint, OTHER_GETS.get(endpoint))
    response = analyst_client.get(f"{BASE}/{endpoint}?{fixed}&{MISTYPED}")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body["errors"]) == {"gendr", "user_plan", "feature_key"}, body
    assert all(message.startswith("Unknown parameter: this endpoint takes ") for [message] in body["errors"].values())
    assert "gendr" in body["detail"] and "feature_key" in body["detail"]
    blank = analyst_client.get(f"{BASE}/{endpoint}?{fixed}&feature_key=")  # blank is still not a parameter here
    assert blank.status_code == 400 and set(blank.json()["errors"]) == {"feature_key"}


@pytest.mark.parametrize(
    "endpoint", ["retention", "top-users", "funnel", "user-activity", "accounts", "users/u1", "accounts/acme"]
)
def test_breakdown_where_there_is_none_is_refused(analyst_client, data, endpoint):
    fixed = ENDPOINTS.get(endpoint, OTHER_GETS.get(endpoint))
    response = analyst_client.get(f"{BASE}/{endpoint}?{fixed}&breakdown=age")
    assert response.status_code == 400, response.content
    assert list(response.json()["errors"]) == ["breakdown"]


def test_another_endpoints_parameter_is_refused_and_dynamic_filters_are_not(analyst_client, data):
    days = analyst_client.get(f"{BASE}/usage-summary?days=7")  # user-activity's look-back
    assert days.status_code == 400 and list(days.json()["errors"]) == ["days"]
    assert "start, end" in days.json()["errors"]["days"][0]
    assert analyst_client.get(f"{BASE}/usage-summary?user.plan=pro&breakdown=event.source").status_code == 200
    assert analyst_client.get(f"{BASE}/usage-summary?format=json").status_code == 200
    # A method the endpoint has not is still a 405, whatever the query string.
    assert analyst_client.generic("TRACE", f"{BASE}/usage-summary?gendr=M").status_code == 405
    assert analyst_client.delete(f"{BASE}/retention?gendr=M").status_code == 405
    event = analyst_client.get(f"{BASE}/top-users?event.source=email").json()
    assert event["errors"] == {
        "event.source": ["Event properties are a breakdown (breakdown=event.<property>), never a filter."]
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("usage-summary?format=csv", "This endpoint answers json only."),
        ("retention?format=csv", "This endpoint answers json only."),
        ("timeseries?format=xml", "Choose one of: json, csv."),
    ],
)
def test_a_format_the_endpoint_has_not_is_a_400_naming_the_ones_it_has(analyst_client, data, url, message):
    response = analyst_client.get(f"{BASE}/{url}")
    assert response.status_code == 400, response.content
    assert response.json() == {"detail": f"format: {message}", "errors": {"format": [message]}}


def test_pages_take_parameters_of_their_own(analyst_user, data):
    """Only the API is strict: a page's URL may carry anything (utm tags, old bookmarks)."""
    client = page_client(analyst_user)
    for page in ("/", "/features/", "/users/", "/retention/"):
        assert client.get(f"{page}?gendr=M&utm_source=mail").status_code == 200, page
