"""The breakdown charts of the dashboard and a feature's page as drawn: one colour per series
within a chart (a page can show more than ten values across its charts), the partial last
point marked as on the charts without a breakdown, and values and subtitles in words."""

import json
import re
from datetime import timedelta

import pytest

from analytics import rollup
from analytics.views_pages.breakdowns import BREAKDOWN_PALETTE, SeriesStyle
from core.days import today
from core.testing import page_client
from telemetry.models import Account

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db


def chart(html, name):
    return json.loads(re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', html, re.S).group(1))


@pytest.fixture
def analyst(analyst_user):
    return page_client(analyst_user)


@pytest.fixture
def twelve_accounts(org):
    """Ten accounts of one busy person each (five events), and two of three people with one
    event each: the events chart's top ten are the first ten, the active users chart's top
    ten hold the last two. All yesterday; returns the feature."""
    search = feature(org, "search")
    day = (today() - timedelta(days=1)).isoformat()
    for n in range(12):
        account = Account.objects.create(organization=org, external_id=f"a{n:02d}", name=f"Account {n:02d}")
        busy = n < 10
        for person in range(1 if busy else 3):
            user = end_user(org, f"u{n}-{person}", first_seen=at(day, "08:00:00"), account=account)
            for _ in range(5 if busy else 1):
                event(org, search, user, at(day, "09:00:00"))
    rollup.rollup_range(today() - timedelta(days=3), today(), org)
    return search


def test_no_two_series_of_a_chart_share_a_colour_across_more_than_ten_accounts(analyst, twelve_accounts):
    html = analyst.get("/?breakdown=account&start=" + (today() - timedelta(days=6)).isoformat()).content.decode()
    charts = {name: chart(html, name) for name in ("chart-events", "chart-active", "chart-top")}
    labels = {name: {s["label"] for s in spec["series"]} for name, spec in charts.items()}
    assert {"Account 10", "Account 11"} <= labels["chart-active"]
    assert "Account 10" not in labels["chart-events"]
    for name, spec in charts.items():
        colors = [s["color"] for s in spec["series"] if s["label"] != "other"]
        assert len(colors) == len(set(colors)), name
    # An account in both charts keeps its colour.
    events = {s["label"]: s["color"] for s in charts["chart-events"]["series"]}
    active = {s["label"]: s["color"] for s in charts["chart-active"]["series"]}
    assert all(active[label] == color for label, color in events.items() if label in active)


def test_a_value_keeps_its_colour_and_a_newcomer_listed_first_takes_a_free_one():
    style = SeriesStyle()
    first = style.chart_series((f"k{n}", [n]) for n in range(10))
    assert [s["color"] for s in first] == list(BREAKDOWN_PALETTE)
    second = style.chart_series([("new", [0]), ("k3", [1]), ("other", [2])] + [(f"k{n}", [n]) for n in (4, 5)])
    colors = {s["label"]: s["color"] for s in second}
    assert colors["k3"] == BREAKDOWN_PALETTE[3] and colors["k4"] == BREAKDOWN_PALETTE[4]
    assert colors["new"] not in {colors["k3"], colors["k4"], colors["k5"], colors["other"]}


def test_breakdown_charts_mark_today_and_a_cut_week_as_partial(analyst, org, twelve_accounts):
    html = analyst.get("/?breakdown=account").content.decode()
    for name in ("chart-events", "chart-active"):
        spec = chart(html, name)
        assert spec["labels"][-1] == today().isoformat()
        assert spec["partial_from"] == len(spec["labels"]) - 1 and spec["partial_label"] == "so far", name
    assert html.count('data-testid="partial-note"') == 2 and "Dashed: today so far" in html
    # A range of weeks that stops on a Wednesday: its last week has three of its seven days.
    end = today() - timedelta(days=today().weekday() + 5)
    event(org, twelve_accounts, end_user(org, "w", gender="F"), at(end.isoformat(), "09:00:00"))
    rollup.rollup_range(end, end, org)
    weekly = f"start={end - timedelta(days=200)}&end={end}"
    spec = chart(analyst.get(f"/?breakdown=gender&{weekly}").content.decode(), "chart-events")
    assert spec["partial_from"] == len(spec["labels"]) - 1 and spec["partial_label"] == "3 of 7 days"
    page = analyst.get(f"/features/{twelve_accounts.pk}/?breakdown=account").content.decode()
    usage = chart(page, "chart-feature-usage")
    assert usage["partial_from"] == len(usage["labels"]) - 1 and 'data-testid="partial-note"' in page


def test_values_without_an_age_come_after_the_bands_and_other_last():
    style = SeriesStyle(order=("<18", "18-40", ">40"))
    keys = ["other", "18-40", "(none)", ">40", "<18"]
    assert [s["label"] for s in style.chart_series((key, [1]) for key in keys)] == [
        "<18",
        "18-40",
        ">40",
        "(none)",
        "other",
    ]
