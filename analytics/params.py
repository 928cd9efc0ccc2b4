"""Query-string parsing for the analytics API and pages.

Each `*_params` function takes a mapping (a QueryDict or a plain dict) and returns the
keyword arguments of the matching `analytics.queries` function, validated. Bad input raises
`DomainError` naming the offending field, so the API answers 400 and the pages can show the
message; the query functions themselves assume valid arguments.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

from usage_platform.exceptions import DomainError

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


def fail(field, message):
    raise DomainError(f"{field}: {message}", errors={field: [message]})


def query_text(query, name):
    """The stripped value of `name`, or None when absent or blank."""
    if query is None:
        return None
    value = query.get(name)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def today():
    """Today's UTC day (days are UTC days in v1)."""
    return timezone.now().astimezone(UTC).date()


def parse_date(value, field):
    """`YYYY-MM-DD` → date, or DomainError naming `field`."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except (TypeError, ValueError):
        fail(field, "Enter a valid date as YYYY-MM-DD.")


def parse_int(query, name, *, default, minimum=None, maximum=None):
    raw = query_text(query, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        fail(name, "A valid integer is required.")
    if minimum is not None and value < minimum:
        fail(name, f"Must be at least {minimum}.")
    if maximum is not None and value > maximum:
        fail(name, f"Must be at most {maximum}.")
    return value


def optional_date(query, field):
    """The date in `field`, or None when absent or blank."""
    raw = query_text(query, field)
    return parse_date(raw, field) if raw else None


def range_check(start, end, *, start_field="start", end_field="end"):
    """Refuse a range ending before it starts or longer than MAX_RANGE_DAYS inclusive days."""
    if start > end:
        fail(start_field, f"{start_field} must be on or before {end_field}.")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        fail(start_field, "The range may not exceed 2 years.")
    return start, end


def date_range(query, *, default_days=DEFAULT_RANGE_DAYS, start_field="start", end_field="end"):
    """(start, end) inclusive UTC days. Defaults: the last `default_days` days ending today;
    with only one bound given, the other is derived from the default length."""
    end = optional_date(query, end_field)
    start = optional_date(query, start_field)
    if end is None:
        end = start + timedelta(days=default_days - 1) if start else today()
    if start is None:
        start = end - timedelta(days=default_days - 1)
    return range_check(start, end, start_field=start_field, end_field=end_field)


def summary_params(query):
    start, end = date_range(query)
    return {"start": start, "end": end}


feature_usage_params = summary_params


def summary_filters(org, query) -> dict:
    """The optional `feature`, `age` and `gender` filters of the summary (validated as for
    the timeseries); only the given ones are returned."""
    args = timeseries_params(
        org, {k: query_text(query, k) for k in ("feature", "age", "gender") if query_text(query, k)}
    )
    return {k: args[k] for k in ("feature", "age", "gender") if args[k]}


def feature_ref(org, raw, field="feature"):
    """A feature of `org` by id or key; an unknown or foreign one is a 400 on `field`."""
    from telemetry.models import Feature

    qs = Feature.objects.filter(organization=org)
    feature = None
    if raw.isdigit():
        feature = qs.filter(pk=int(raw)).first()
    if feature is None:
        feature = qs.filter(key=raw).first()
    if feature is None:
        fail(field, "Unknown feature.")
    return feature


def timeseries_params(org, query):
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
    raw_feature = query_text(query, "feature") or query_text(query, "feature_id")
    feature = feature_ref(org, raw_feature) if raw_feature else None
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


def user_activity_params(query):
    sort = query_text(query, "sort") or "-events"
    if sort not in USER_SORTS:
        fail("sort", f"Choose one of: {', '.join(USER_SORTS)}.")
    return {
        "days": parse_int(query, "days", default=30, minimum=1, maximum=MAX_RANGE_DAYS),
        "search": query_text(query, "search") or "",
        "sort": sort,
        "page": parse_int(query, "page", default=1, minimum=1),
        "page_size": parse_int(query, "page_size", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE),
    }


def retention_params(query):
    return {
        "weeks": parse_int(query, "weeks", default=12, minimum=1, maximum=104),
        "end": optional_date(query, "end"),
    }


def top_users_params(query):
    start, end = date_range(query)
    return {
        "limit": parse_int(query, "limit", default=10, minimum=1, maximum=MAX_PAGE_SIZE),
        "start": start,
        "end": end,
    }


def funnel_params(query):
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


def aggregate_params(query):
    """`?date=` for one day, or `since`/`until` for a range (inclusive); default yesterday."""
    raw_date = query_text(query, "date")
    if raw_date:
        day = parse_date(raw_date, "date")
        return {"since": day, "until": day}
    if query_text(query, "since") or query_text(query, "until"):
        since, until = date_range(query, default_days=1, start_field="since", end_field="until")
        return {"since": since, "until": until}
    yesterday = today() - timedelta(days=1)
    return {"since": yesterday, "until": yesterday}
