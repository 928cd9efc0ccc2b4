"""Stickiness (DAU/MAU over the range) per feature, hand-counted over 2025-03-01 … 03-03:

search: u1 on all three days, u2 on the first → DAU 2, 1, 1 → 4/3 a day ÷ 2 users = 66.7 %
export: u1 on the first day only             → DAU 1, 0, 0 → 1/3 a day ÷ 1 user  = 33.3 %
"""

import re
from datetime import date

import pytest

from analytics import queries, rollup
from analytics.queries.features import stickiness_pct
from core.testing import page_client

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db

START, END = date(2025, 3, 1), date(2025, 3, 3)


@pytest.fixture
def used(org):
    search, export = feature(org, "search"), feature(org, "export")
    u1, u2 = end_user(org, "u1"), end_user(org, "u2")
    for day in ("2025-03-01", "2025-03-02", "2025-03-03"):
        event(org, search, u1, at(day))
    event(org, search, u1, at("2025-03-02", "13:00:00"))  # a second event the same day: still one user
    event(org, search, u2, at("2025-03-01"))
    event(org, export, u1, at("2025-03-01"))
    rollup.rollup_range(START, END, org)
    return {"search": search, "export": export}


def test_stickiness_formula():
    assert stickiness_pct(4, 3, 2) == 66.7
    assert stickiness_pct(30, 30, 1) == 100.0
    assert stickiness_pct(0, 30, 0) is None


def test_feature_usage_has_stickiness(org, used):
    rows = {
        r["feature_key"]: r["stickiness_pct"] for r in queries.feature_usage.uncached(org, START, END, stickiness=True)
    }
    assert rows == {"search": 66.7, "export": 33.3}


def test_feature_figures_has_stickiness(org, used):
    figures = queries.feature_figures.uncached(org, feature=used["search"], start=START, end=END)
    assert figures["stickiness_pct"] == 66.7


def test_features_table_and_feature_page_show_stickiness(analyst_user, used):
    client = page_client(analyst_user)
    table = client.get("/features/?start=2025-03-01&end=2025-03-03&sort=-stickiness").content.decode()
    assert re.findall(r'data-testid="stickiness">([^<]*)<', table) == ["66.7%", "33.3%"]
    page = client.get(f"/features/{used['search'].pk}/?start=2025-03-01&end=2025-03-03").content.decode()
    assert re.search(r'data-testid="feature-stickiness">66\.7<', page)
