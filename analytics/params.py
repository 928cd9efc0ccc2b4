"""Query-string parsing for the analytics API and pages.

Each `*_params` function takes a mapping (a QueryDict or a plain dict) and returns the
keyword arguments of the matching `analytics.queries` function, validated. Bad input raises
`DomainError` naming the offending field, so the API answers 400 and the pages can show the
message; the query functions themselves assume valid arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, cast

from django.utils import timezone

from core.exceptions import DomainError

if TYPE_CHECKING:
    from telemetry.models import Feature
    from tenants.models import Organization

DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 2 * 366  # "a range over 2 years" is refused; leap years included
METRICS = ("events", "active_users", "avg_session_duration")
INTERVALS = ("day", "week")
AGE_BANDS = ("<18", "18-40", ">40")
GENDERS = {"f": "F", "female": "F", "m": "M", "male": "M", "o": "O", "other": "O"}
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
# The days analytics can be asked about. Events before 1970 are refused at ingestion; the
# upper bound keeps every derived day (the day after a range, a funnel window, the
# previous period) far inside what `date` and the databases can represent.
MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2999, 12, 31)
# Far beyond any real page, and small enough that page × page_size stays a SQL bigint.
MAX_PAGE = 10_000_000
MAX_ID = 2**63 - 1  # a bigint primary key
# The filters DESIGN's analytics contract names: an endpoint that cannot apply one of them
# refuses it rather than answering unfiltered figures.
FILTERS = ("start", "end", "feature", "feature_id", "age", "gender", "account", "segment")
FILTER_PREFIXES = ("user.", "event.")
# ASCII digits only: int() also takes "١٢", "1_000" and surrounding spaces, and
# str.isdigit() is true for "²", which int() refuses.
_INT_RE = re.compile(r"[+-]?[0-9]+")
_ID_RE = re.compile(r"[0-9]{1,19}")

# A QueryDict, a plain dict of parameters, or nothing.
Query = Mapping[str, Any] | None


def fail(field: str, message: str) -> NoReturn:
    raise DomainError(f"{field}: {message}", errors={field: [message]})


def query_text(query: Query, name: str) -> str | None:
    """The stripped value of `name`, or None when absent or blank. A NUL character is refused
    here, once for every parameter: PostgreSQL cannot compare text holding one."""
    if query is None:
        return None
    value = query.get(name)
    if value is None:
        return None
    value = str(value).strip()
    if "\x00" in value:
        fail(name, "Must not contain NUL characters.")
    return value or None


def today() -> date:
    """Today's UTC day (days are UTC days in v1)."""
    return timezone.now().astimezone(UTC).date()


def parse_date(value: object, field: str) -> date:
    """`YYYY-MM-DD` between MIN_DATE and MAX_DATE → date, or DomainError naming `field`."""
    if not (isinstance(value, date) and not isinstance(value, datetime)):
        try:
            value = date.fromisoformat(str(value).strip())
        except (TypeError, ValueError):
            fail(field, "Enter a valid date as YYYY-MM-DD.")
    if not MIN_DATE <= value <= MAX_DATE:
        fail(field, f"Enter a date from {MIN_DATE.isoformat()} to {MAX_DATE.isoformat()}.")
    return value


def parse_int(query: Query, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter within [minimum, maximum] (both required, so nothing
    unbounded reaches date arithmetic or an SQL OFFSET), or `default` when absent."""
    raw = query_text(query, name)
    if raw is None:
        return default
    if not _INT_RE.fullmatch(raw):
        fail(name, "A valid integer is required.")
    # Past 18 digits only the sign matters (and int() of thousands of digits costs time).
    value = int(raw) if len(raw) <= 19 else float("-inf" if raw[0] == "-" else "inf")
    if value < minimum:
        fail(name, f"Must be at least {minimum}.")
    if value > maximum:
        fail(name, f"Must be at most {maximum}.")
    return cast(int, value)  # the infinities were refused above


def parse_id(raw: object) -> int | None:
    """A database id written in ASCII digits (1 … 2⁶³−1), else None: the text is then a key
    or name, or nothing at all."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _ID_RE.fullmatch(raw):
        value = int(raw)
    else:
        return None
    return value if 0 < value <= MAX_ID else None


def filters_supported(query: Query, supported: tuple[str, ...] = ()) -> None:
    """Refuse any analytics filter (DESIGN's list) this endpoint does not apply, naming it:
    answering unfiltered figures to a filtered question would be silently wrong."""
    if query is None:
        return
    for name in query.keys():
        if name in supported:
            continue
        if name in FILTERS or name.startswith(FILTER_PREFIXES):
            fail(name, "This filter is not supported here.")


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def parse_bool(query: Query, name: str, *, default: bool) -> bool:
    """`true`/`false` (also 1/0, yes/no, on/off); anything else is refused, not read as false."""
    raw = query_text(query, name)
    if raw is None:
        return default
    if raw.lower() not in _BOOLEANS:
        fail(name, "Must be true or false.")
    return _BOOLEANS[raw.lower()]


def optional_date(query: Query, field: str) -> date | None:
    """The date in `field`, or None when absent or blank."""
    raw = query_text(query, field)
    return parse_date(raw, field) if raw else None


def range_check(start: date, end: date, *, start_field: str = "start", end_field: str = "end") -> tuple[date, date]:
    """Refuse a range ending before it starts or longer than MAX_RANGE_DAYS inclusive days."""
    if start > end:
        fail(start_field, f"{start_field} must be on or before {end_field}.")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        fail(start_field, "The range may not exceed 2 years.")
    return start, end


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
    from telemetry.models import Feature

    qs = Feature.objects.filter(organization=org)
    feature = None
    pk = parse_id(raw)
    if pk is not None:
        feature = qs.filter(pk=pk).first()
    if feature is None:
        feature = qs.filter(key=raw).first()
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
        if gender.lower() not in GENDERS:
            fail("gender", "Choose one of: F, M, O.")
        gender = GENDERS[gender.lower()]
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
