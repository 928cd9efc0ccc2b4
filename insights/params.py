"""Query-string parsing for the insights API and pages: a mapping in, validated keyword
arguments for the service functions out; bad input raises DomainError naming the field.

Dates, integers, "today" and the two-year cap are `core.query_params`' and `core.days`', as
analytics' are, so both APIs refuse the same input with the same messages."""

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from core.days import today
from core.query_params import (
    Query,
    fail,
    filters_supported,
    optional_date,
    parse_bool,
    parse_int,
    query_text,
    range_check,
    range_to_today,
)

from .models import Anomaly

DEFAULT_CHART_DAYS = 30
DEFAULT_PREDICTION_DAYS = 14
# The forecast horizon the API accepts (`forecast` reads it from here).
PREDICTION_MIN_DAYS, PREDICTION_MAX_DAYS = 7, 30


DETECTORS = ("timeseries", "outlier_features")
# Anomalies are the time-series findings; the "outlier features" ranking is listed only
# when asked for by name (insights.queries).
DEFAULT_DETECTOR = "timeseries"


def _choice(query: Query, name: str, choices: Sequence[str]) -> str | None:
    raw = query_text(query, name)
    if raw is not None and raw not in choices:
        fail(name, f"Choose one of: {', '.join(choices)}.")
    return raw


def anomaly_list_params(query: Query) -> dict[str, Any]:
    """`status`, `severity`, `detector` (default the time-series anomalies), `start`, `end`
    (all optional)."""
    filters_supported(query, ("start", "end"))
    start, end = optional_date(query, "start"), optional_date(query, "end")
    if start and end:
        range_check(start, end)
    return {
        "status": _choice(query, "status", Anomaly.Status.values),
        "severity": _choice(query, "severity", Anomaly.Severity.values),
        "detector": _choice(query, "detector", DETECTORS) or DEFAULT_DETECTOR,
        "start": start,
        "end": end,
    }


def chart_params(query: Query) -> dict[str, Any]:
    """`start`/`end`, default the last 30 days up to yesterday (today's rollup is partial);
    a start alone runs to yesterday, or is that one day when it is today (it was refused as
    "start must be on or before end", an end nobody gave)."""
    filters_supported(query, ("start", "end"))
    given_start = optional_date(query, "start")
    end = optional_date(query, "end") or max(today() - timedelta(days=1), given_start or date.min)
    start = given_start or end - timedelta(days=DEFAULT_CHART_DAYS - 1)
    start, end = range_to_today(start, end)
    return {"start": start, "end": end}


def prediction_params(query: Query) -> dict[str, Any]:
    """`days` (7–30, default 14) and an optional `feature` (id, key or name)."""
    filters_supported(query, ("feature",))
    return {
        "days": parse_int(
            query, "days", default=DEFAULT_PREDICTION_DAYS, minimum=PREDICTION_MIN_DAYS, maximum=PREDICTION_MAX_DAYS
        ),
        "feature": query_text(query, "feature"),
    }


def insight_params(query: Query) -> dict[str, Any]:
    """`refresh` (a boolean, default false); the narrative takes no filter."""
    filters_supported(query)
    return {"refresh": parse_bool(query, "refresh", default=False)}
