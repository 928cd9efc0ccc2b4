"""Query-string parsing for the insights API and pages: a mapping in, validated keyword
arguments for the service functions out; bad input raises DomainError naming the field."""

from datetime import date, timedelta

from django.utils import timezone

from usage_platform.exceptions import DomainError

from .models import Anomaly

DEFAULT_CHART_DAYS = 30
MAX_RANGE_DAYS = 2 * 366


def _fail(field, message):
    raise DomainError(f"{field}: {message}", errors={field: [message]})


def _get(query, name):
    value = (query or {}).get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _date(query, name):
    raw = _get(query, name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        _fail(name, "Enter a valid date as YYYY-MM-DD.")


def _choice(query, name, choices):
    raw = _get(query, name)
    if raw is not None and raw not in choices:
        _fail(name, f"Choose one of: {', '.join(choices)}.")
    return raw


def _range(start, end):
    if start and end and start > end:
        _fail("start", "Must be on or before end.")
    if start and end and (end - start).days > MAX_RANGE_DAYS:
        _fail("start", "The range may span at most two years.")
    return start, end


def anomaly_list_params(query) -> dict:
    """`status`, `severity`, `detector`, `start`, `end` (all optional)."""
    start, end = _range(_date(query, "start"), _date(query, "end"))
    return {
        "status": _choice(query, "status", Anomaly.Status.values),
        "severity": _choice(query, "severity", Anomaly.Severity.values),
        "detector": _choice(query, "detector", ("timeseries", "outlier_features")),
        "start": start,
        "end": end,
    }


def chart_params(query) -> dict:
    """`start`/`end`, default the last 30 days up to yesterday."""
    end = _date(query, "end") or timezone.now().date() - timedelta(days=1)
    start = _date(query, "start") or end - timedelta(days=DEFAULT_CHART_DAYS - 1)
    start, end = _range(start, end)
    return {"start": start, "end": end}


def prediction_params(query) -> dict:
    """`days` (7–30, default 14) and an optional `feature` (id or key)."""
    raw = _get(query, "days")
    if raw is None:
        days = 14
    else:
        try:
            days = int(raw)
        except ValueError:
            _fail("days", "A valid integer is required.")
        if not 7 <= days <= 30:
            _fail("days", "Must be between 7 and 30.")
    return {"days": days, "feature": _get(query, "feature")}
