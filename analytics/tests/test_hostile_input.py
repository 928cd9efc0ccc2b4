"""Hostile query strings on every analytics endpoint and page: dates past what date
arithmetic can reach, digits that are not ASCII, integers past a SQL bigint, NUL, filters an
endpoint cannot apply. Each answers its exact status with the error shape naming the field
(pages: their 400 page or fragment), never a 500 or a trace."""

from datetime import date, timedelta

import pytest

from analytics import rollup
from analytics.tests.pages_data import usage_make
from core.testing import page_client

from .conftest import D1, D3

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"
RANGE = "start=2025-03-01&end=2025-03-03"
FAR_PAST = "0001-01-01"
FAR_FUTURE = "9999-12-31"
BIG = "99999999999999999999"  # past a bigint
SUPERSCRIPT_TWO = "%C2%B2"  # "²": str.isdigit() is true, int() refuses it
FULLWIDTH_ONE = "%EF%BC%91"  # "１": int() accepts it
NUL = "%00"


def assert_refused(response, field, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail", "errors"}
    assert field in body["errors"], body
    assert "Traceback" not in response.content.decode()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        # Dates whose neighbours (the day after, the previous period) leave `date`'s range.
        (f"usage-summary?end={FAR_PAST}", "end"),
        (f"usage-summary?start={FAR_PAST}", "start"),
        (f"usage-summary?start={FAR_FUTURE}", "start"),
        (f"feature-usage?end={FAR_PAST}", "end"),
        (f"feature-usage?start={FAR_FUTURE}&format=csv", "start"),
        (f"timeseries?end={FAR_PAST}", "end"),
        (f"timeseries?start={FAR_PAST}&interval=week", "start"),
        (f"top-users?end={FAR_PAST}", "end"),
        (f"top-users?start={FAR_FUTURE}", "start"),
        (f"funnel?steps=search,export&end={FAR_PAST}", "end"),
        (f"funnel?steps=search,export&start={FAR_FUTURE}", "start"),
        (f"retention?end={FAR_PAST}", "end"),
        (f"retention?end={FAR_FUTURE}", "end"),
        ("retention?end=1969-12-31", "end"),
        # Feature references that are neither an id nor a key.
        (f"usage-summary?feature={SUPERSCRIPT_TWO}", "feature"),
        (f"usage-summary?feature_id={SUPERSCRIPT_TWO}", "feature_id"),
        (f"timeseries?feature={SUPERSCRIPT_TWO}", "feature"),
        (f"timeseries?feature_id={BIG}", "feature_id"),
        (f"timeseries?feature={NUL}", "feature"),
        ("usage-summary?feature=search&feature_id=1", "feature_id"),
        # Integers: overflow, non-ASCII digits, NUL.
        (f"user-activity?page={BIG}", "page"),
        ("user-activity?page=10000001", "page"),
        (f"user-activity?page={FULLWIDTH_ONE}", "page"),
        ("user-activity?page=1_0", "page"),
        (f"user-activity?page_size={BIG}", "page_size"),
        (f"user-activity?days={BIG}", "days"),
        (f"user-activity?days={SUPERSCRIPT_TWO}", "days"),
        (f"user-activity?search={NUL}", "search"),
        (f"top-users?limit={BIG}", "limit"),
        (f"retention?weeks={BIG}", "weeks"),
        (f"funnel?steps=search,export&window_days={BIG}", "window_days"),
        (f"funnel?steps=search,{NUL}", "steps"),
        ("user-activity?page=" + "9" * 5000, "page"),
        # Filters an endpoint cannot apply are refused, never ignored (every endpoint applies
        # the others: test_filters_walk).
        ("usage-summary?account=nobody", "account"),  # an unknown account
        ("usage-summary?segment=3", "segment"),
        ("usage-summary?user.=pro", "user."),
        ("top-users?user.a..b=pro", "user.a..b"),
        ("user-activity?days=7&start=2025-03-01", "days"),
        ("retention?weeks=4&start=2025-03-01", "weeks"),
        ("funnel?steps=search,export&feature=search", "feature"),
        ("timeseries?event.plan=pro", "event.plan"),
        ("feature-usage?event.plan=pro", "event.plan"),
        # Given twice with different values: one was dropped silently (the last one won).
        ("usage-summary?gender=F&gender=M", "gender"),
        ("feature-usage?user.plan=pro&user.plan=free", "user.plan"),
        ("timeseries?breakdown=gender&breakdown=age", "breakdown"),
        ("user-activity?page_size=5&page_size=50", "page_size"),
    ],
)
def test_hostile_query_strings_are_400_naming_the_field(analyst_client, rolled, path, field):
    assert_refused(analyst_client.get(f"{BASE}/{path}"), field)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"since={FAR_FUTURE}", "since"),
        (f"until={FAR_FUTURE}", "until"),
        (f"since={FAR_PAST}", "since"),
        (f"date={FAR_PAST}", "date"),
        (f"date={FAR_FUTURE}", "date"),
        (f"date=2025-03-01&feature={SUPERSCRIPT_TWO}", "feature"),
    ],
)
def test_aggregate_run_refuses_days_out_of_range(admin_client, org, query, field):
    assert_refused(admin_client.post(f"{BASE}/aggregate/run?{query}"), field)


def test_aggregate_run_reads_the_body_too(admin_client, org):
    response = admin_client.post(f"{BASE}/aggregate/run", {"since": FAR_FUTURE}, format="json")
    assert_refused(response, "since")


def test_a_blank_repeat_is_no_value(analyst_client, rolled):
    # `age=18-40&age=` was read as no age filter (the last value, blank, won).
    once = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&age=18-40").json()
    assert analyst_client.get(f"{BASE}/usage-summary?{RANGE}&age=18-40&age=").json() == once
    assert analyst_client.get(f"{BASE}/usage-summary?{RANGE}&age=&age=18-40&age=18-40").json() == once


def test_end_user_path_with_nul_is_404(analyst_client, rolled):
    response = analyst_client.get(f"{BASE}/users/u1{NUL}")
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "errors"}


def test_usage_summary_applies_feature_id(analyst_client, rolled):
    export = rolled["export"]
    by_id = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&feature_id={export.pk}").json()
    by_key = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&feature=export").json()
    everything = analyst_client.get(f"{BASE}/usage-summary?{RANGE}").json()
    assert by_id["total_events"]["value"] == by_key["total_events"]["value"] == 2
    assert by_id["active_users"]["value"] == 2  # u1 and u3 used export
    assert everything["total_events"]["value"] == 6


def test_feature_id_of_another_organisation_is_refused(analyst_client, rolled, other_org):
    from .factories import feature

    foreign = feature(other_org, "secret")
    assert_refused(analyst_client.get(f"{BASE}/usage-summary?feature_id={foreign.pk}"), "feature_id")
    assert_refused(analyst_client.get(f"{BASE}/timeseries?feature_id={foreign.pk}"), "feature_id")


def test_the_edges_of_the_supported_days_still_answer(analyst_client, admin_client, rolled):
    for path in (
        "usage-summary?start=1970-01-01&end=1970-01-31",
        "usage-summary?end=1970-01-01",
        "timeseries?end=2999-12-31&interval=week",  # cut at today
        "retention?end=1970-01-01&weeks=104",
        f"user-activity?page=10000000&page_size=500&days={2 * 366}",
    ):
        response = analyst_client.get(f"{BASE}/{path}")
        assert response.status_code == 200, (path, response.content)
    # A range that starts after today has no figures yet: a 400 naming start, not zeros.
    for path in (
        "timeseries?start=2999-12-01&end=2999-12-31&interval=week",
        "funnel?steps=search,export&start=2999-12-01&end=2999-12-31&window_days=90",
        "top-users?start=2999-12-31",
    ):
        assert_refused(analyst_client.get(f"{BASE}/{path}"), "start")
    assert_refused(admin_client.post(f"{BASE}/aggregate/run?since=2999-12-31"), "since")


# --- pages --------------------------------------------------------------------------------------


@pytest.fixture
def pages(org, analyst_user, member_user):
    # A week of data is enough to reach every page's code (every feature exists: the member
    # uses them all); the full 45 days cost 4–5 s of rollup per test on PostgreSQL.
    usage_make(org, days=7, users=6, member=member_user)
    return page_client(analyst_user)


@pytest.mark.parametrize(
    "url",
    [
        f"/?end={FAR_PAST}",
        f"/?start={FAR_FUTURE}",
        f"/?feature={SUPERSCRIPT_TWO}",
        f"/?feature_id={SUPERSCRIPT_TWO}",
        f"/?feature={NUL}",
        "/?account=acme",  # no such account here
        f"/features/?end={FAR_PAST}",
        "/features/{feature}/?feature=search",
        "/?segment=12345",
        "/users/?user.=x",
        "/retention/?event.plan=pro",
        f"/features/{{feature}}/?start={FAR_PAST}",
        f"/users/?page={BIG}",
        f"/users/?search={NUL}",
        f"/users/?days={SUPERSCRIPT_TWO}",
        f"/retention/?end={FAR_PAST}",
        f"/retention/?weeks={BIG}",
        f"/funnels/?step=search&step=export&end={FAR_PAST}",
        f"/funnels/?step=search&step=export&window_days={BIG}",
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_hostile_page_queries_are_400_pages(pages, org, url, htmx):
    from telemetry.models import Feature

    feature = Feature.objects.get(organization=org, key="search")
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = pages.get(url.format(feature=feature.pk), **headers)
    assert response.status_code == 400, response.content[:300]
    content = response.content.decode()
    assert "Traceback" not in content
    assert any(
        message in content
        for message in (
            "Enter a date",
            "Must",
            "Unknown feature",
            "Unknown account",
            "not supported",
            "valid integer",
            "Unknown segment",
            "property",
        )
    )


@pytest.mark.parametrize("url", [f"/users/u1{NUL}/", f"/features/{BIG}/", f"/features/{BIG}/?start={FAR_PAST}"])
def test_hostile_page_paths_are_404_pages(pages, url):
    assert pages.get(url).status_code == 404


@pytest.fixture
def rolled(org, dataset):
    rollup.rollup_range(D1, D3, org)
    return dataset


RANGE_ENDPOINTS = (
    "usage-summary?",
    "feature-usage?",
    "timeseries?interval=week&",
    "top-users?",
    "funnel?steps=search,export&",
    "retention?",
    "user-activity?",
)


@pytest.mark.parametrize("endpoint", RANGE_ENDPOINTS)
def test_every_endpoint_takes_the_same_longest_range(analyst_client, rolled, endpoint):
    """2 years (732 days) everywhere, retention too: from a Sunday, its cohorts touch 106 weeks."""
    start = date(2023, 1, 1)  # a Sunday
    longest = analyst_client.get(f"{BASE}/{endpoint}start={start}&end={start + timedelta(days=731)}")
    assert longest.status_code == 200, longest.content
    if endpoint.startswith("retention"):
        assert len(longest.json()["cohorts"]) == 106
    too_long = analyst_client.get(f"{BASE}/{endpoint}start={start}&end={start + timedelta(days=732)}")
    assert too_long.status_code == 400
    assert too_long.json()["errors"] == {"start": ["The range may not exceed 2 years."]}
