"""Query-string parsing for the analytics API and pages.

Each `*_params` function takes a mapping (a QueryDict or a plain dict) and returns the
keyword arguments of the matching `analytics.queries` function, validated. Bad input raises
`DomainError` naming the offending field, so the API answers 400 and the pages can show the
message; the query functions themselves assume valid arguments.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from core.days import today
from core.query_params import (
    MAX_RANGE_DAYS,
    Query,
    fail,
    filters_supported,
    optional_date,
    parse_bool,
    parse_date,
    parse_int,
    query_text,
    range_check,
)
from telemetry.models import EndUser
from telemetry.queries import feature_find

if TYPE_CHECKING:
    from telemetry.models import Feature
    from tenants.models import Organization

DEFAULT_RANGE_DAYS = 30
METRICS = ("events", "active_users", "avg_session_duration")
INTERVALS = ("day", "week")
AGE_BANDS = ("<18", "18-40", ">40")
USER_SORTS = (
    "events",
    "-events",
    "avg_session_duration",
    "-avg_session_duration",
    "last_seen",
    "-last_seen",
    "first_seen",
    "-first_seen",
    "user_id",
    "-user_id",
    "email",
    "-email",
)
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MIN_FUNNEL_STEPS = 2
MAX_FUNNEL_STEPS = 10
# Far beyond any real page, and small enough that page × page_size stays a SQL bigint.
MAX_PAGE = 10_000_000


def date_range(
    query: Query, *, default_days: int = DEFAULT_RANGE_DAYS, start_field: str = "start", end_field: str = "end"
) -> tuple[date, date]:
    """(start, end) inclusive UTC days. Defaults: the last `default_days` days ending today;
    with only one bound given, the other is derived from the default length."""
    end = optional_date(query, end_field)
    start = optional_date(query, start_field)
    if end is None:
        end = start + timedelta(days=default_days - 1) if start else today()
    if start is None:
        start = end - timedelta(days=default_days - 1)
    return range_check(start, end, start_field=start_field, end_field=end_field)


def summary_params(query: Query) -> dict[str, Any]:
    """The summary's range; its other filters are `summary_filters`'."""
    start, end = date_range(query)
    return {"start": start, "end": end}


def feature_usage_params(query: Query) -> dict[str, Any]:
    filters_supported(query, ("start", "end"))
    return summary_params(query)


SUMMARY_FILTERS = ("start", "end", "feature", "feature_id", "age", "gender")


def summary_filters(org: Organization, query: Query) -> dict[str, Any]:
    """The optional `feature` (or `feature_id`), `age` and `gender` filters of the summary
    (validated as for the timeseries); only the given ones are returned."""
    filters_supported(query, SUMMARY_FILTERS)
    given = {k: query_text(query, k) for k in ("feature", "feature_id", "age", "gender")}
    args = timeseries_params(org, {k: v for k, v in given.items() if v})
    return {k: args[k] for k in ("feature", "age", "gender") if args[k]}


def feature_ref(org: Organization, raw: str, field: str = "feature") -> Feature:
    """A feature of `org` by id or key; an unknown or foreign one is a 400 on `field`."""
    feature = feature_find(org, raw)
    if feature is None:
        fail(field, "Unknown feature.")
    return feature


TIMESERIES_FILTERS = ("start", "end", "feature", "feature_id", "age", "gender")


def timeseries_params(org: Organization, query: Query) -> dict[str, Any]:
    filters_supported(query, TIMESERIES_FILTERS)
    metric = query_text(query, "metric") or "events"
    if metric not in METRICS:
        fail("metric", f"Choose one of: {', '.join(METRICS)}.")
    interval = query_text(query, "interval") or "day"
    if interval not in INTERVALS:
        fail("interval", f"Choose one of: {', '.join(INTERVALS)}.")
    age = query_text(query, "age")
    if age is not None and age not in AGE_BANDS:
        fail("age", f"Choose one of: {', '.join(AGE_BANDS)}.")
    gender = query_text(query, "gender")
    if gender is not None:
        gender = EndUser.gender_code(gender)
        if gender is None:
            fail("gender", "Choose one of: F, M, O.")
    feature = None
    by_key, by_id = query_text(query, "feature"), query_text(query, "feature_id")
    if by_key and by_id:
        fail("feature_id", "Give feature or feature_id, not both.")
    ref = by_key or by_id
    if ref:
        feature = feature_ref(org, ref, "feature" if by_key else "feature_id")
    start, end = date_range(query)
    return {
        "metric": metric,
        "interval": interval,
        "start": start,
        "end": end,
        "feature": feature,
        "age": age,
        "gender": gender,
    }


def user_activity_params(query: Query) -> dict[str, Any]:
    filters_supported(query)
    sort = query_text(query, "sort") or "-events"
    if sort not in USER_SORTS:
        fail("sort", f"Choose one of: {', '.join(USER_SORTS)}.")
    return {
        "days": parse_int(query, "days", default=30, minimum=1, maximum=MAX_RANGE_DAYS),
        "search": query_text(query, "search") or "",
        "sort": sort,
        "page": parse_int(query, "page", default=1, minimum=1, maximum=MAX_PAGE),
        "page_size": parse_int(query, "page_size", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE),
    }


def retention_params(query: Query) -> dict[str, Any]:
    filters_supported(query, ("end",))
    return {
        "weeks": parse_int(query, "weeks", default=12, minimum=1, maximum=104),
        "end": optional_date(query, "end"),
    }


def top_users_params(query: Query) -> dict[str, Any]:
    filters_supported(query, ("start", "end"))
    start, end = date_range(query)
    return {
        "limit": parse_int(query, "limit", default=10, minimum=1, maximum=MAX_PAGE_SIZE),
        "start": start,
        "end": end,
    }


def funnel_params(query: Query) -> dict[str, Any]:
    filters_supported(query, ("start", "end"))
    raw = query_text(query, "steps")
    steps = [s.strip() for s in raw.split(",") if s.strip()] if raw else []
    if len(steps) < MIN_FUNNEL_STEPS:
        fail("steps", f"Give at least {MIN_FUNNEL_STEPS} comma-separated steps.")
    if len(steps) > MAX_FUNNEL_STEPS:
        fail("steps", f"Give at most {MAX_FUNNEL_STEPS} steps.")
    start, end = date_range(query)
    return {
        "steps": steps,
        "window_days": parse_int(query, "window_days", default=7, minimum=1, maximum=90),
        "start": start,
        "end": end,
    }


def aggregate_params(query: Query) -> dict[str, Any]:
    """`?date=` for one day, or `since`/`until` for a range (inclusive); default yesterday."""
    filters_supported(query)
    raw_date = query_text(query, "date")
    if raw_date:
        day = parse_date(raw_date, "date")
        return {"since": day, "until": day}
    if query_text(query, "since") or query_text(query, "until"):
        since, until = date_range(query, default_days=1, start_field="since", end_field="until")
        return {"since": since, "until": until}
    yesterday = today() - timedelta(days=1)
    return {"since": yesterday, "until": yesterday}


def end_user_params(query: Query) -> dict[str, Any]:
    """`?before=` an event's uuid (the `timeline_next` of the page before): the timeline's
    older events."""
    filters_supported(query)
    raw = query_text(query, "before")
    if raw is None:
        return {"before": None}
    try:
        return {"before": UUID(raw)}
    except ValueError:
        fail("before", "Must be an event id (a UUID), as timeline_next gives it.")


ACCOUNT_SORTS = tuple(
    s
    for field in ("events", "active_users", "features_used", "trend_pct", "name", "account_id")
    for s in (field, f"-{field}")
)


def account_list_params(org: Organization, query: Query) -> dict[str, Any]:
    """`account_list` arguments: `end` (the last day of the recent 4 weeks), `search`,
    `at_risk` (true/false), `feature` (id or key: the accounts using it), sort and page."""
    filters_supported(query, ("end", "feature"))
    sort = query_text(query, "sort") or "-events"
    if sort not in ACCOUNT_SORTS:
        fail("sort", f"Choose one of: {', '.join(ACCOUNT_SORTS)}.")
    raw_feature = query_text(query, "feature")
    return {
        "end": optional_date(query, "end"),
        "search": query_text(query, "search") or "",
        "at_risk": parse_bool(query, "at_risk", default=False) if query_text(query, "at_risk") else None,
        "feature": feature_ref(org, raw_feature) if raw_feature else None,
        "sort": sort,
        "page": parse_int(query, "page", default=1, minimum=1, maximum=MAX_PAGE),
        "page_size": parse_int(query, "page_size", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE),
    }


def account_detail_params(query: Query) -> dict[str, Any]:
    filters_supported(query, ("end",))
    return {"end": optional_date(query, "end")}
