"""The figures the pages show, computed in `analytics.queries` (never in a view): one
average-session rule everywhere, the feature detail's figures, retention weighted by cohort."""

from datetime import date

import pytest

from analytics import queries, rollup

from .conftest import D1, D3
from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db


@pytest.fixture
def rolled(org, dataset):
    rollup.rollup_range(D1, D3, org)
    return dataset


def test_session_average_is_total_over_timed_events():
    assert queries.session_average(180, 3) == 60.0
    assert queries.session_average(100, 3) == 33.33
    assert queries.session_average(0, 0) is None  # no duration at all: unknown, not 0 s


def test_feature_figures_known_answers(org, rolled):
    # search: Mar 1 u1 60 s + u2 30 s; Mar 2 u2 90 s + an anonymous event without a duration.
    figures = queries.feature_figures(org, feature=rolled["search"].pk, start=D1, end=D3)
    assert figures["events"] == 4
    assert (figures["peak_active_users"], figures["avg_active_users"]) == (2, 1.0)  # 2, 1, 0 per day
    # (60 + 30 + 90) / 3 timed events; the mean of the daily means would be (45 + 90) / 2 = 67.5.
    assert figures["avg_session_duration"] == 60.0
    assert [(p["date"], p["events"], p["active_users"]) for p in figures["points"]] == [
        (D1, 2, 2),
        (date(2025, 3, 2), 2, 1),
        (D3, 0, 0),
    ]


@pytest.mark.parametrize("key", ["search", "export"])
def test_feature_average_session_is_the_dashboards(org, rolled, key):
    figures = queries.feature_figures(org, feature=rolled[key], start=D1, end=D3)
    summary = queries.usage_summary(org, D1, D3, filters={"feature": rolled[key]})
    usage = {row["feature_key"]: row for row in queries.feature_usage(org, D1, D3)}
    assert figures["avg_session_duration"] == summary["avg_session_duration"]["value"]
    assert figures["avg_session_duration"] == usage[key]["avg_session_duration"]
    assert figures["events"] == summary["total_events"]["value"] == usage[key]["events"]


def test_feature_figures_by_week_are_per_week(org, rolled):
    figures = queries.feature_figures(org, feature=rolled["search"], start=D1, end=D3, interval="week")
    # Mar 1-2 fall in the week of Mon Feb 24, Mar 3 in the next one; u1 and u2 in the first.
    assert [p["active_users"] for p in figures["points"]] == [2, 0]
    assert figures["peak_active_users"] == 2 and figures["avg_active_users"] == 1.0
    assert figures["avg_session_duration"] == 60.0


def test_feature_figures_of_an_unused_feature(org):
    quiet = feature(org, "quiet")
    figures = queries.feature_figures(org, feature=quiet, start=D1, end=D3)
    assert (figures["events"], figures["peak_active_users"], figures["avg_session_duration"]) == (0, 0, None)


def test_retention_averages_weigh_cohorts_by_size(org):
    f = feature(org, "app")
    # Week of Mon 2025-03-03: a (days 0, 1, 7, 30), b (day 0 only); next week: c (days 0, 7).
    a = end_user(org, "a", first_seen=at("2025-03-03", "09:00:00"))
    b = end_user(org, "b", first_seen=at("2025-03-04", "09:00:00"))
    c = end_user(org, "c", first_seen=at("2025-03-10", "09:00:00"))
    for day in ("2025-03-03", "2025-03-04", "2025-03-10", "2025-04-02"):
        event(org, f, a, at(day, "09:00:00"))
    event(org, f, b, at("2025-03-04", "09:00:00"))
    event(org, f, c, at("2025-03-10", "09:00:00"))
    event(org, f, c, at("2025-03-17", "23:59:59"))
    rollup.rollup_range(date(2025, 3, 3), date(2025, 4, 2), org)  # retention reads the per-user rollups
    averages = queries.retention_averages(queries.retention(org, weeks=6, end=date(2025, 4, 9))["cohorts"])
    assert averages["users"] == 3
    assert averages["d1"] == pytest.approx((50 * 2 + 0 * 1) / 3)  # not (50 + 0) / 2
    assert averages["d7"] == pytest.approx((50 * 2 + 100 * 1) / 3)
    assert averages["d30"] == 50.0  # the second cohort cannot be measured yet: left out


def test_retention_averages_without_users():
    empty = [{"size": 0, "d1": None, "d7": None, "d30": None, "weeks": []}]
    assert queries.retention_averages(empty) == {"users": 0, "d1": None, "d7": None, "d30": None}
    assert queries.retention_averages([]) == {"users": 0, "d1": None, "d7": None, "d30": None}
