import csv
import io
from datetime import timedelta

import pytest

from analytics import rollup
from analytics.models import DailyOrgUsage
from analytics.views_api import FeatureUsageView, TimeseriesView, UserActivityView
from conftest import client_for, make_member
from core.days import today
from tenants.models import Role

from .conftest import D1, D3
from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"
RANGE = "start=2025-03-01&end=2025-03-03"


@pytest.fixture
def rolled(org, dataset):
    rollup.rollup_range(D1, D3, org)
    return dataset


def test_usage_summary(analyst_client, rolled):
    response = analyst_client.get(f"{BASE}/usage-summary?{RANGE}")
    assert response.status_code == 200
    body = response.json()
    assert body["start"] == "2025-03-01" and body["end"] == "2025-03-03"
    assert body["total_events"] == {"value": 6, "previous": 0, "change_pct": None}
    assert body["active_users"]["value"] == 3
    feature_only = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&feature=export").json()
    assert feature_only["total_events"]["value"] == 2
    demographic = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&age=<18&gender=o").json()
    assert demographic["total_events"]["value"] == 1 and demographic["active_users"]["value"] == 1


def test_default_range_is_last_30_days(analyst_client, org):
    body = analyst_client.get(f"{BASE}/timeseries").json()
    assert len(body["points"]) == 30 and body["metric"] == "events" and body["interval"] == "day"


def test_feature_usage_and_csv(analyst_client, rolled):
    body = analyst_client.get(f"{BASE}/feature-usage?{RANGE}").json()
    assert [r["feature_key"] for r in body["results"]] == ["search", "export"]
    response = analyst_client.get(f"{BASE}/feature-usage?{RANGE}&format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="feature-usage.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["feature_key"], r["events"], r["share"]) for r in rows] == [
        ("search", "4", "66.7"),
        ("export", "2", "33.3"),
    ]


def test_missing_durations_are_null_not_zero(analyst_client, org, rolled):
    """A feature, a user and a period with no event carrying a duration have no average
    session: null, never 0.0."""
    silent = feature(org, "silent")
    quiet = end_user(org, "quiet", first_seen=at("2025-03-02", "12:00:00"))
    event(org, silent, quiet, at("2025-03-02", "12:00:00"))
    rollup.rollup_range(D1, D3, org)
    rows = {r["feature_key"]: r for r in analyst_client.get(f"{BASE}/feature-usage?{RANGE}").json()["results"]}
    assert rows["silent"]["avg_session_duration"] is None and rows["search"]["avg_session_duration"] == 60.0
    from django.utils import timezone

    event(org, silent, end_user(org, "recent"), timezone.now())
    rollup.rollup_day(timezone.now().date(), org)  # the user list reads the per-user rollups
    users = {r["user_id"]: r for r in analyst_client.get(f"{BASE}/user-activity").json()["results"]}
    assert users["recent"]["avg_session_duration"] is None
    assert analyst_client.get(f"{BASE}/users/quiet").json()["totals"]["avg_session_duration"] is None
    summary = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&feature=silent").json()["avg_session_duration"]
    assert summary == {"value": None, "previous": None, "change_pct": None}
    summary = analyst_client.get(f"{BASE}/usage-summary?{RANGE}&gender=M").json()["avg_session_duration"]
    assert summary["value"] == 60.0 and summary["previous"] is None


def test_weekly_timeseries_starts_at_start(analyst_client, rolled):
    """start=2025-03-01 is a Saturday: the first weekly point is labelled 2025-03-01 (the
    days of that week in the range), never the Monday before it."""
    body = analyst_client.get(f"{BASE}/timeseries?{RANGE}&interval=week").json()
    assert [(p["date"], p["value"]) for p in body["points"]] == [("2025-03-01", 5), ("2025-03-03", 1)]
    assert all(p["date"] >= body["start"] for p in body["points"])


def test_timeseries_and_csv(analyst_client, rolled):
    body = analyst_client.get(f"{BASE}/timeseries?{RANGE}&metric=active_users&feature=search").json()
    assert [p["value"] for p in body["points"]] == [2, 1, 0]
    assert body["feature"]["key"] == "search"
    response = analyst_client.get(f"{BASE}/timeseries?{RANGE}&format=csv&age=>40")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert rows == [
        {"date": "2025-03-01", "value": "1"},
        {"date": "2025-03-02", "value": "1"},
        {"date": "2025-03-03", "value": "0"},
    ]


def test_user_activity_paginated_and_csv(analyst_client, org):
    from django.utils import timezone

    f = feature(org, "app")
    now = timezone.now()
    for i in range(5):
        user = end_user(org, f"user{i}", first_seen=now)
        for _ in range(i + 1):
            event(org, f, user, now, duration=10)
    rollup.rollup_day(now.date(), org)  # the user list reads the per-user rollups
    body = analyst_client.get(f"{BASE}/user-activity?page_size=2&page=2").json()
    assert body["count"] == 5
    assert [r["user_id"] for r in body["results"]] == ["user2", "user1"]
    assert "page=3" in body["next"] and "page=1" in body["previous"]
    row = body["results"][0]
    assert set(row) == {"user_id", "email", "events", "avg_session_duration", "first_seen", "last_seen", "top_feature"}
    response = analyst_client.get(f"{BASE}/user-activity?format=csv&search=user")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 5 and rows[0]["user_id"] == "user4" and rows[0]["top_feature"] == "app"
    assert response["Content-Disposition"] == 'attachment; filename="user-activity.csv"'


@pytest.mark.parametrize(
    ("view", "endpoint", "full", "empty"),
    [
        (FeatureUsageView, "feature-usage", RANGE, "start=2001-01-01&end=2001-01-01"),
        (UserActivityView, "user-activity", "days=1", "search=nobody"),
        (TimeseriesView, "timeseries", RANGE, "start=2001-01-01&end=2001-01-01"),
    ],
)
def test_csv_without_rows_is_its_header_line(analyst_client, org, rolled, view, endpoint, full, empty):
    # Found by the schemathesis run: no rows rendered an empty body, which DRF sends without
    # a Content-Type. The header names the same columns as the rows have.
    from django.utils import timezone

    now = timezone.now()
    event(org, rolled["search"], end_user(org, "today", first_seen=now), now, duration=5)
    rollup.rollup_day(now.date(), org)
    with_rows = analyst_client.get(f"{BASE}/{endpoint}?{full}")
    rows = with_rows.json().get("results") or with_rows.json().get("points")
    assert rows and list(rows[0]) == list(view.csv_columns)
    response = analyst_client.get(f"{BASE}/{endpoint}?{empty}&format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == ",".join(view.csv_columns)
    assert len(lines) == (2 if endpoint == "timeseries" else 1)


def test_member_sees_only_their_own_activity(member_client, member_user, org):
    from django.utils import timezone

    f = feature(org, "app")
    mine = end_user(org, "me", member=member_user, first_seen=timezone.now())
    other = end_user(org, "someone-else", first_seen=timezone.now())
    event(org, f, mine, timezone.now())
    event(org, f, other, timezone.now())
    rollup.rollup_day(timezone.now().date(), org)
    body = member_client.get(f"{BASE}/user-activity").json()
    assert [r["user_id"] for r in body["results"]] == ["me"]
    assert member_client.get(f"{BASE}/user-activity?search=someone").json()["count"] == 0


@pytest.mark.parametrize(
    "path",
    ["usage-summary", "feature-usage", "timeseries", "retention", "top-users", "funnel?steps=a,b", "users/u1"],
)
def test_member_forbidden_elsewhere(member_client, rolled, path):
    response = member_client.get(f"{BASE}/{path}")
    assert response.status_code == 403
    assert "analyst" in response.json()["detail"]


def test_anonymous_and_api_key_refused(anon_client, key_client):
    assert anon_client.get(f"{BASE}/usage-summary").status_code == 401
    assert key_client.get(f"{BASE}/usage-summary").status_code in (401, 403)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("usage-summary?start=2025-13-01", "start"),
        ("usage-summary?end=yesterday", "end"),
        ("usage-summary?start=2025-03-05&end=2025-03-01", "start"),
        ("usage-summary?start=2020-01-01&end=2025-01-01", "start"),
        ("usage-summary?age=old", "age"),
        ("feature-usage?start=nope", "start"),
        ("feature-usage?format=csv&start=nope", "start"),
        ("timeseries?metric=revenue", "metric"),
        ("timeseries?interval=month", "interval"),
        ("timeseries?age=30-50", "age"),
        ("timeseries?gender=x", "gender"),
        ("timeseries?feature=does-not-exist", "feature"),
        ("timeseries?format=csv&metric=revenue", "metric"),
        ("user-activity?days=0", "days"),
        ("user-activity?days=abc", "days"),
        ("user-activity?sort=password", "sort"),
        ("user-activity?page_size=501", "page_size"),
        ("retention?weeks=0", "weeks"),
        ("retention?end=2025-02-30", "end"),
        ("top-users?limit=-1", "limit"),
        ("funnel?steps=search", "steps"),
        ("funnel", "steps"),
        ("funnel?steps=" + ",".join(f"s{i}" for i in range(11)), "steps"),
        ("funnel?steps=a,b&window_days=0", "window_days"),
        ("funnel?steps=a,b&start=2025-03-02&end=2025-03-01", "start"),
    ],
)
def test_bad_input_names_the_field(analyst_client, org, path, field):
    response = analyst_client.get(f"{BASE}/{path}")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert field in body["errors"] and body["detail"]


def test_foreign_feature_is_400_and_foreign_end_user_404(analyst_client, other_org, rolled):
    foreign = feature(other_org, "secret")
    end_user(other_org, "their-user")
    response = analyst_client.get(f"{BASE}/timeseries?feature={foreign.pk}")
    assert response.status_code == 400 and "feature" in response.json()["errors"]
    assert analyst_client.get(f"{BASE}/usage-summary?feature=secret").status_code == 400
    assert analyst_client.get(f"{BASE}/users/their-user").status_code == 404
    assert analyst_client.get(f"{BASE}/users/u1").status_code == 200


def test_other_org_sees_none_of_our_data(other_client, rolled):
    body = other_client.get(f"{BASE}/usage-summary?{RANGE}").json()
    assert body["total_events"]["value"] == 0
    assert other_client.get(f"{BASE}/feature-usage?{RANGE}").json()["results"] == []
    assert other_client.get(f"{BASE}/top-users?{RANGE}").json()["results"] == []


def test_end_user_detail(analyst_client, rolled):
    body = analyst_client.get(f"{BASE}/users/u2").json()
    assert body["user_id"] == "u2" and body["totals"]["events"] == 2
    assert [g["session_id"] for g in body["timeline"]] == ["s3", "s2"]


def test_end_user_timeline_pages(analyst_client, org):
    from django.utils import timezone

    f, user, now = feature(org, "app"), end_user(org, "busy"), timezone.now()
    for i in range(205):
        event(org, f, user, now - timedelta(minutes=i), session=f"s{i // 150}")
    first = analyst_client.get(f"{BASE}/users/busy").json()
    assert first["totals"]["events"] == 205 and first["timeline_events"] == 200 and first["timeline_next"]
    older = analyst_client.get(f"{BASE}/users/busy?before={first['timeline_next']}").json()
    assert older["timeline_events"] == 5 and older["timeline_next"] is None
    assert older["timeline"][0]["continued"] and older["timeline"][0]["session_id"] == "s1"
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = analyst_client.get(f"{BASE}/users/busy?before={bad}")
        assert response.status_code == 400 and "before" in response.json()["errors"]


def test_retention_top_users_funnel(analyst_client, rolled):
    retention = analyst_client.get(f"{BASE}/retention?weeks=2&end=2025-03-03").json()
    assert [c["size"] for c in retention["cohorts"]] == [2, 1]
    empty = analyst_client.get(f"{BASE}/retention?weeks=4&end=2025-03-31").json()["cohorts"][-1]
    assert empty["size"] == 0 and empty["d1"] is None and empty["weeks"] == [None]
    top = analyst_client.get(f"{BASE}/top-users?{RANGE}&limit=1").json()
    assert [r["user_id"] for r in top["results"]] == ["u1"]
    funnel = analyst_client.get(f"{BASE}/funnel?steps=search,export&{RANGE}").json()
    assert [s["users"] for s in funnel["steps"]] == [2, 1]


def test_aggregate_run_admin_only(admin_client, analyst_client, org, dataset):
    denied = analyst_client.post(f"{BASE}/aggregate/run?date=2025-03-01")
    assert denied.status_code == 403 and "admin" in denied.json()["detail"]
    response = admin_client.post(f"{BASE}/aggregate/run?date=2025-03-01")
    assert response.status_code == 200
    assert response.json()["aggregated"] == 3
    ranged = admin_client.post(f"{BASE}/aggregate/run", {"since": "2025-03-01", "until": "2025-03-03"}, format="json")
    assert ranged.json()["aggregated"] == 7
    assert DailyOrgUsage.objects.filter(organization=org).count() == 3
    bad = admin_client.post(f"{BASE}/aggregate/run?date=tomorrow")
    assert bad.status_code == 400 and "date" in bad.json()["errors"]


def test_aggregate_run_refuses_a_day_to_come_and_a_body_that_is_not_an_object(admin_client, org):
    # Both answered 200, the list body rolling up yesterday as if it were empty.
    to_come = admin_client.post(f"{BASE}/aggregate/run?date={today() + timedelta(days=1)}")
    assert to_come.status_code == 400 and "after today" in to_come.json()["errors"]["date"][0]
    listed = admin_client.post(f"{BASE}/aggregate/run", "[1, 2]", content_type="application/json")
    assert listed.status_code == 400 and "JSON object" in listed.json()["detail"]
    assert not DailyOrgUsage.objects.filter(organization=org).exists()


def test_aggregate_run_touches_only_own_org(admin_client, other_org, org, dataset):
    event(other_org, feature(other_org, "x"), None, at("2025-03-01", "10:00:00"))
    admin_client.post(f"{BASE}/aggregate/run?date=2025-03-01")
    assert not DailyOrgUsage.objects.filter(organization=other_org).exists()


def test_superuser_picks_org(org, rolled):
    from tenants.models import User

    staff = User.objects.create_superuser(email="staff@platform.example", password="x-Long-Password-1")
    client = client_for(staff)
    assert client.get(f"{BASE}/usage-summary").status_code == 400
    body = client.get(f"{BASE}/usage-summary?{RANGE}&org_id={org.pk}").json()
    assert body["total_events"]["value"] == 6


def _bulk(org, users, features, per_user):
    from django.utils import timezone

    now = timezone.now()
    fs = [feature(org, f"feature-{i}") for i in range(features)]
    for u in range(users):
        user = end_user(org, f"bulk{u}", first_seen=now)
        for i in range(per_user):
            event(org, fs[i % features], user, now, session=f"s{u}", duration=5)
    rollup.rollup_day(now.date(), org)


@pytest.mark.parametrize("size", [2, 12])
def test_query_counts_do_not_grow_with_rows(analyst_client, org, django_assert_max_num_queries, size):
    _bulk(org, users=size, features=size, per_user=3)
    steps = ",".join(f"feature-{i}" for i in range(min(size, 10)))
    # authentication (user + organisation) comes on top of the query functions' own queries
    budgets = {
        "usage-summary": 8,
        "feature-usage": 4,
        "user-activity?page_size=500": 6,
        "user-activity?format=csv": 6,
        "timeseries?interval=week&metric=active_users": 4,
        "timeseries?age=<18": 4,
        "retention": 4,
        "top-users?limit=50": 7,  # the weekly bounds, edge days, winners, profiles, top features
        f"funnel?steps={steps}": 5,
        "feature-usage?format=csv": 4,
        "users/bulk0": 7,
    }
    for path, budget in budgets.items():
        with django_assert_max_num_queries(budget):
            response = analyst_client.get(f"{BASE}/{path}")
        assert response.status_code == 200, (path, response.content)


def test_schema_has_the_analytics_paths(admin_client):
    response = admin_client.get("/api/schema/?format=json")
    paths = response.json()["paths"]
    for name in ("usage-summary", "feature-usage", "user-activity", "timeseries", "retention", "top-users", "funnel"):
        assert f"/api/v1/analytics/{name}" in paths
    assert "/api/v1/analytics/users/{external_id}" in paths
    assert "/api/v1/analytics/aggregate/run" in paths


def test_analyst_role_member_upgrade(org):
    analyst = make_member(org, Role.ANALYST)
    assert client_for(analyst).get(f"{BASE}/retention").status_code == 200
