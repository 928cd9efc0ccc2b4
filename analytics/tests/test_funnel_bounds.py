"""A funnel request is bounded: its plan joins nothing in a loop on PostgreSQL, whatever the
statistics say, and past the statement time limit it answers 503 with Retry-After on both
backends (SQLite through its progress handler), never hangs."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from analytics.queries.funnel import funnel_sql
from telemetry.models import UsageEvent

from .conftest import D1, D3
from .factories import at, end_user, feature

pytestmark = pytest.mark.django_db

STEPS = ["search", "cart", "buy"]


@pytest.fixture
def shop(org):
    """300 users each searching, half of them adding to the cart, a third buying: 3,000
    events in the test's transaction (no statistics describe them)."""
    features = {key: feature(org, key) for key in STEPS}
    rows = []
    for i in range(300):
        user = end_user(org, f"shopper-{i}")
        for k in range(10):
            key = "search" if k < 5 else ("cart" if i % 2 == 0 else "search")
            if k == 9 and i % 3 == 0:
                key = "buy"
            when = at("2025-03-01", "08:00:00") + timedelta(minutes=i + k * 7)
            rows.append(UsageEvent(uuid=uuid.uuid4(), organization=org, feature=features[key], end_user=user,
                                   timestamp=when))  # fmt: skip
    UsageEvent.objects.bulk_create(rows)
    return {key: f.pk for key, f in features.items()}


def test_funnel_answers(analyst_client, shop):
    body = analyst_client.get(f"/api/v1/analytics/funnel?steps={','.join(STEPS)}&start={D1}&end={D3}").json()
    assert [s["users"] for s in body["steps"]] == [300, 150, 50]


@pytest.mark.skipif(not settings.IS_POSTGRES, reason="the plan is PostgreSQL's")
def test_the_funnel_plan_joins_nothing_in_a_loop(org, shop):
    sql, params = funnel_sql(org, steps=STEPS, feature_ids=shop, window_days=7, start=D1, end=D3)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        text = "\n".join(row[0] for row in cursor.fetchall())
    for shape in ("Nested Loop", "SubPlan"):
        assert shape not in text, text


@pytest.mark.skipif(settings.IS_POSTGRES, reason="SQLite's loop")
def test_on_sqlite_each_later_step_looks_up_each_users_own_events(org, shop):
    """SQLite loops over the previous step's users: each one's events by the (organization,
    end user, timestamp) index, never a range over the whole step's feature per user."""
    sql, params = funnel_sql(org, steps=STEPS, feature_ids=shop, window_days=7, start=D1, end=D3)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        details = [row[3] for row in cursor.fetchall() if "SEARCH e " in row[3]]
    assert len(details) == len(STEPS), details
    assert "feature_id=?" in details[0]
    assert all("end_user_id=?" in d and "feature_id=?" not in d for d in details[1:]), details


def test_a_funnel_past_the_time_limit_answers_503(analyst_client, shop, settings):
    if settings.IS_POSTGRES:
        with connection.cursor() as cursor:  # what a web process's connection carries, made tiny
            cursor.execute("SET statement_timeout = 1")
    else:
        settings.DB_STATEMENT_TIMEOUT_MS, settings.WEB_PROCESS = 1, True
    response = analyst_client.get(f"/api/v1/analytics/funnel?steps={','.join(STEPS)}&start={D1}&end={D3}")
    assert response.status_code == 503
    assert response["Retry-After"]
    assert "took too long" in response.json()["detail"]
