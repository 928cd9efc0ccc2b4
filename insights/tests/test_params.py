"""The insights query-string parsers: their defaults, and the same range rules and messages
as analytics' (the two-year cap used to differ by a day)."""

from datetime import date, timedelta

import pytest

from analytics import params as analytics_params
from core.days import today
from core.exceptions import DomainError
from core.query_params import MAX_RANGE_DAYS
from insights import params

FIRST = date(2024, 1, 1)
LAST = FIRST + timedelta(days=MAX_RANGE_DAYS - 1)  # inclusive: the longest range allowed


def test_chart_defaults_to_the_30_days_up_to_yesterday():
    yesterday = today() - timedelta(days=1)
    assert params.chart_params({}) == {"start": yesterday - timedelta(days=29), "end": yesterday}
    assert params.chart_params({"end": "2026-03-31"}) == {"start": date(2026, 3, 2), "end": date(2026, 3, 31)}
    # A start alone runs to yesterday, or is today alone (it was refused for an end not given).
    week_ago = today() - timedelta(days=7)
    assert params.chart_params({"start": week_ago.isoformat()}) == {"start": week_ago, "end": yesterday}
    assert params.chart_params({"start": today().isoformat()}) == {"start": today(), "end": today()}


@pytest.mark.parametrize("parse", [params.chart_params, params.anomaly_list_params, analytics_params.summary_params])
def test_the_two_year_cap_is_the_same_as_analytics(parse):
    assert parse({"start": FIRST.isoformat(), "end": LAST.isoformat()})["end"] == LAST
    with pytest.raises(DomainError) as refused:
        parse({"start": FIRST.isoformat(), "end": (LAST + timedelta(days=1)).isoformat()})
    assert refused.value.errors == {"start": ["The range may not exceed 2 years."]}


@pytest.mark.parametrize("parse", [params.chart_params, params.anomaly_list_params])
def test_bad_dates_read_as_in_analytics(parse):
    with pytest.raises(DomainError) as bad:
        parse({"start": "2026-13-01"})
    assert bad.value.errors == {"start": ["Enter a valid date as YYYY-MM-DD."]}
    with pytest.raises(DomainError) as backwards:
        parse({"start": "2026-02-01", "end": "2026-01-01"})
    assert backwards.value.errors == {"start": ["start must be on or before end."]}


def test_anomaly_filters_are_optional():
    assert params.anomaly_list_params({}) == {
        "status": None,
        "severity": None,
        "detector": "timeseries",  # anomalies; the "outlier features" ranking only by name
        "start": None,
        "end": None,
    }
    assert params.anomaly_list_params({"start": " 2026-01-05 "})["start"] == date(2026, 1, 5)


@pytest.mark.parametrize(("raw", "days"), [(None, 14), ("", 14), ("7", 7), (" 30 ", 30)])
def test_prediction_days(raw, days):
    query = {} if raw is None else {"days": raw}
    assert params.prediction_params(query) == {"days": days, "feature": None}


@pytest.mark.parametrize(("raw", "message"), [("6", "Must be at least 7."), ("31", "Must be at most 30.")])
def test_prediction_days_out_of_range(raw, message):
    with pytest.raises(DomainError) as refused:
        params.prediction_params({"days": raw, "feature": "search"})
    assert refused.value.errors == {"days": [message]}


@pytest.mark.parametrize(
    ("raw", "refresh"), [(None, False), ("", False), ("true", True), ("1", True), ("No", False), ("off", False)]
)
def test_refresh_is_a_boolean(raw, refresh):
    assert params.insight_params({} if raw is None else {"refresh": raw}) == {"refresh": refresh}


@pytest.mark.parametrize("raw", ["null", "maybe", "2"])
def test_refresh_that_is_not_a_boolean_is_refused(raw):
    # The schemathesis run: `?refresh=null` was read as false, silently.
    with pytest.raises(DomainError) as refused:
        params.insight_params({"refresh": raw})
    assert refused.value.errors == {"refresh": ["Must be true or false."]}


def test_the_narrative_refuses_filters_it_cannot_apply():
    with pytest.raises(DomainError) as refused:
        params.insight_params({"start": "2026-01-01"})
    assert list(refused.value.errors) == ["start"]
