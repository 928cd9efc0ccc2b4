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

from django.conf import settings

from core.days import today
from core.query_params import (
    MAX_PAGE_SIZE,
    MAX_RANGE_DAYS,
    Query,
    fail,
    filters_supported,
    optional_date,
    page_params,
    parse_bool,
    parse_date,
    parse_int,
    query_text,
    range_to_today,
)
from telemetry.queries import feature_find
from telemetry.services.partitions import raw_events_horizon

from .filters import AGE_BANDS as AGE_BANDS
from .filters import filter_set_parse, filters_refuse, property_check
from .queries.funnel import funnel_steps_resolve

if TYPE_CHECKING:
    from telemetry.models import Feature
    from tenants.models import Organization

DEFAULT_RANGE_DAYS = 30
METRICS = ("events", "active_users", "avg_session_duration")
INTERVALS = ("day", "week")
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
MIN_FUNNEL_STEPS = 2
MAX_FUNNEL_STEPS = 10
MAX_RETENTION_WEEKS = 104  # `weeks=`: two years of whole weeks (a start/end range may touch 106)


def date_range(
    query: Query, *, default_days: int = DEFAULT_RANGE_DAYS, start_field: str = "start", end_field: str = "end"
) -> tuple[date, date]:
    """(start, end) inclusive UTC days. Defaults: the last `default_days` days ending today;
    a start alone runs to today (as the schema says of `end`), an end alone starts
    `default_days` before it."""
    end = optional_date(query, end_field)
    start = optional_date(query, start_field)
    if end is not None and start is None:
        end = min(end, today())  # an end alone past today: the default length up to today
    if end is None:
        end = today()
    if start is None:
        start = end - timedelta(days=default_days - 1)
    return range_to_today(start, end, start_field=start_field, end_field=end_field)


def summary_params(query: Query) -> dict[str, Any]:
    """The summary's range; its other filters are `summary_filters`'."""
    start, end = date_range(query)
    return {"start": start, "end": end}


def feature_usage_params(org: Organization, query: Query) -> dict[str, Any]:
    """The range and every filter (a feature filter keeps that feature's row)."""
    filters_refuse(query)
    return summary_params(query) | {"filters": filter_set_parse(org, query)}


def summary_filters(org: Organization, query: Query) -> dict[str, Any]:
    """The filter set of the summary (`analytics.filters`); only the given ones."""
    filters_refuse(query)
    return filter_set_parse(org, query)


BREAKDOWNS = ("feature", "event_type", "age", "gender", "account")
BREAKDOWN_PREFIXES = ("user.", "event.")


def breakdown_param(query: Query) -> str | None:
    """`breakdown`: feature, event_type, age, gender, account, user.<property> or
    event.<property>, or None."""
    raw = query_text(query, "breakdown")
    if raw is None:
        return None
    if raw in BREAKDOWNS:
        return raw
    prefix = next((p for p in BREAKDOWN_PREFIXES if raw.startswith(p)), None)
    if prefix is None:
        fail("breakdown", "Choose feature, event_type, age, gender, account, user.<property> or event.<property>.")
    property_check(f"user.{raw[len(prefix) :]}", "breakdown")
    return raw


def feature_ref(org: Organization, raw: str, field: str = "feature") -> Feature:
    """A feature of `org` by id, key or name; an unknown or foreign one is a 400 on `field`."""
    feature = feature_find(org, raw)
    if feature is None:
        fail(field, "Unknown feature.")
    return feature


def timeseries_params(org: Organization, query: Query) -> dict[str, Any]:
    """metric, interval, the range and the filters as `queries.timeseries` takes them."""
    filters_refuse(query)
    metric = query_text(query, "metric") or "events"
    if metric not in METRICS:
        fail("metric", f"Choose one of: {', '.join(METRICS)}.")
    interval = query_text(query, "interval") or "day"
    if interval not in INTERVALS:
        fail("interval", f"Choose one of: {', '.join(INTERVALS)}.")
    filters = filter_set_parse(org, query)
    start, end = date_range(query)
    return {
        "metric": metric,
        "interval": interval,
        "start": start,
        "end": end,
        "feature": filters.get("feature"),
        "age": filters.get("age"),
        "gender": filters.get("gender"),
        "account": filters.get("account"),
        "user_properties": filters.get("user_properties"),
    }


def user_activity_params(org: Organization, query: Query) -> dict[str, Any]:
    """`days` (look-back) or a `start`/`end` range, search, sort, page and the filters."""
    filters_refuse(query)
    sort = query_text(query, "sort") or "-events"
    if sort not in USER_SORTS:
        fail("sort", f"Choose one of: {', '.join(USER_SORTS)}.")
    args: dict[str, Any] = {
        "days": parse_int(query, "days", default=30, minimum=1, maximum=MAX_RANGE_DAYS),
        "search": query_text(query, "search") or "",
        "sort": sort,
        "filters": filter_set_parse(org, query),
    }
    args["page"], args["page_size"] = page_params(query)
    if query_text(query, "start") or query_text(query, "end"):
        if query_text(query, "days"):
            fail("days", "Give days or start/end, not both.")
        args["start"], args["end"] = date_range(query)
    return args


def retention_params(org: Organization, query: Query) -> dict[str, Any]:
    """`weeks` of cohorts up to `end`, or the cohorts from the week of `start` to `end`."""
    filters_refuse(query)
    end = optional_date(query, "end")
    end = min(end, today()) if end else None  # cohorts to come have no users yet
    start = optional_date(query, "start")
    weeks = parse_int(query, "weeks", default=12, minimum=1, maximum=MAX_RETENTION_WEEKS)
    if start is not None:
        if query_text(query, "weeks"):
            fail("weeks", "Give weeks or start, not both.")
        last = end or today()
        # The 2-year cap of every range; its weeks (up to 106 when both ends cut a week) are
        # not capped again, so a range the other endpoints take is taken here too.
        range_to_today(start, last)
        weeks = ((last - timedelta(days=last.weekday())) - (start - timedelta(days=start.weekday()))).days // 7 + 1
        end = last
    return {"weeks": weeks, "end": end, "filters": filter_set_parse(org, query)}


def top_users_params(org: Organization, query: Query) -> dict[str, Any]:
    filters_refuse(query)
    start, end = date_range(query)
    return {
        "limit": parse_int(query, "limit", default=10, minimum=1, maximum=MAX_PAGE_SIZE),
        "start": start,
        "end": end,
        "filters": filter_set_parse(org, query),
    }


def funnel_params(org: Organization, query: Query, *, listed: list[str] | None = None) -> dict[str, Any]:
    """Steps, window, range and the person filters. A feature filter is refused: a funnel's
    steps name its features and event types, and one feature's events cannot make a funnel
    of several (a saved segment's feature is refused the same way). The steps are `steps`,
    comma-separated, or `listed` as they are (the page's builder has a field per step, and a
    feature's name may hold a comma: "39 Steps, The")."""
    filters_refuse(query, ("feature", "feature_id"))
    if listed is not None:
        steps = [s.strip() for s in listed if s.strip()]
    else:
        raw = query_text(query, "steps")
        steps = [s.strip() for s in raw.split(",") if s.strip()] if raw else []
    if len(steps) < MIN_FUNNEL_STEPS:
        fail("steps", f"Give at least {MIN_FUNNEL_STEPS} comma-separated steps.")
    if len(steps) > MAX_FUNNEL_STEPS:
        fail("steps", f"Give at most {MAX_FUNNEL_STEPS} steps.")
    start, end = date_range(query)
    start = raw_events_kept_from(start, end, field="start", why=FUNNEL_KEPT)
    filters = filter_set_parse(org, query)
    if "feature" in filters:
        fail("feature", "This filter is not supported here: a funnel's steps name its features.")
    window_days = parse_int(query, "window_days", default=7, minimum=1, maximum=90)
    # Last, as it reads the database: the other parameters' mistakes are told first.
    resolved, unknown = funnel_steps_resolve(org, steps)
    if unknown:
        number = steps.index(unknown[0]) + 1
        fail(
            "steps",
            f"Step {number}, {unknown[0]!r}, is no feature (key, id or name) and no event type any end user has sent.",
        )
    steps = resolved
    return {
        "steps": steps,
        "window_days": window_days,
        "start": start,
        "end": end,
        "filters": filters,
    }


FUNNEL_KEPT = "a funnel reads raw events, so it cannot cover earlier days"
ROLLUP_KEPT = "the rollups of earlier days are kept as they were and cannot be recomputed"


def aggregate_params(query: Query) -> dict[str, Any]:
    """`?date=` for one day, or `since`/`until` for a range (inclusive); default yesterday."""
    filters_supported(query)
    raw_date = query_text(query, "date")
    if raw_date:
        day = parse_date(raw_date, "date")
        if day > today():
            # As `since` is refused: a day to come has no events to roll up.
            fail("date", f"The day is after today ({today().isoformat()}): there are no events to roll up yet.")
        return {"since": raw_events_kept_from(day, day, field="date", why=ROLLUP_KEPT), "until": day}
    if query_text(query, "since") or query_text(query, "until"):
        since, until = date_range(query, default_days=1, start_field="since", end_field="until")
        return {"since": raw_events_kept_from(since, until, field="since", why=ROLLUP_KEPT), "until": until}
    yesterday = today() - timedelta(days=1)
    return {"since": raw_events_kept_from(yesterday, yesterday, field="date", why=ROLLUP_KEPT), "until": yesterday}


def raw_events_kept_from(start: date, end: date, *, field: str, why: str) -> date:
    """`start`, or the first day whose raw events are kept (RAW_EVENT_RETENTION_MONTHS) when
    start..end begins before it; a range wholly before it is refused naming the setting and
    `why`. What reads raw events (a funnel, a rollup) finds none there: its zeros, or a
    rollup that silently did nothing, would read as figures (the answer's start or since says
    where the range was cut, as a range is cut at today)."""
    horizon = raw_events_horizon()
    if horizon is None or start >= horizon.date():
        return start
    first = horizon.date()
    if end < first:
        fail(
            field,
            f"Raw events before {first.isoformat()} are not kept "
            f"(RAW_EVENT_RETENTION_MONTHS={settings.RAW_EVENT_RETENTION_MONTHS}): {why}.",
        )
    return first


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
        fail("before", 'Must be an event id (a UUID): follow the timeline\'s "Older events" link (`timeline_next`).')


ACCOUNT_SORTS = tuple(
    s
    for field in ("events", "active_users", "features_used", "trend_pct", "name", "account_id")
    for s in (field, f"-{field}")
)


def account_list_params(org: Organization, query: Query) -> dict[str, Any]:
    """`account_list` arguments: `end` (the last day of the recent 4 weeks), `search`,
    `at_risk` (true/false), `feature` (id, key or name: the accounts using it), sort and page."""
    filters_supported(query, ("end", "feature"))
    sort = query_text(query, "sort") or "-events"
    if sort not in ACCOUNT_SORTS:
        fail("sort", f"Choose one of: {', '.join(ACCOUNT_SORTS)}.")
    raw_feature = query_text(query, "feature")
    args: dict[str, Any] = {
        "end": _account_window_end(query),
        "search": query_text(query, "search") or "",
        "at_risk": parse_bool(query, "at_risk", default=False) if query_text(query, "at_risk") else None,
        "feature": feature_ref(org, raw_feature) if raw_feature else None,
        "sort": sort,
    }
    args["page"], args["page_size"] = page_params(query)
    return args


def account_detail_params(query: Query) -> dict[str, Any]:
    filters_supported(query, ("end",))
    return {"end": _account_window_end(query)}


def _account_window_end(query: Query) -> date | None:
    """The accounts' `end`, today at the latest: a window in the future has no usage yet, so
    every account read as at risk, −100 %."""
    end = optional_date(query, "end")
    if end is not None and end > today():
        fail(
            "end", f"end may be today ({today().isoformat()}) at the latest: the 4 weeks ending then have no usage yet."
        )
    return end
