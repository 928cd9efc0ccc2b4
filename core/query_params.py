"""Query-string parsing every API and page shares: a mapping in (a QueryDict or a plain dict),
validated values out. Bad input raises `DomainError` naming the offending field, so the API
answers 400 and a page can show the message. The apps' own `params` modules build their
endpoints' arguments from these."""

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, NoReturn, cast

from core.days import today
from core.exceptions import DomainError

MAX_RANGE_DAYS = 2 * 366  # "a range over 2 years" is refused; leap years included
# The days analytics can be asked about. Events before 1970 are refused at ingestion; the
# upper bound keeps every derived day (the day after a range, a funnel window, the
# previous period) far inside what `date` and the databases can represent.
MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2999, 12, 31)
MAX_ID = 2**63 - 1  # a bigint primary key
# The filters DESIGN's analytics contract names: an endpoint (of analytics or insights) that
# cannot apply one of them refuses it rather than answering unfiltered figures.
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


def query_values(query: Query, name: str) -> set[str]:
    """The distinct non-blank values given for `name`, stripped (a blank repeat is none)."""
    if query is None:
        return set()
    given = query.getlist(name) if hasattr(query, "getlist") else [query.get(name)]
    return {str(value).strip() for value in given if value is not None} - {""}


def query_text(query: Query, name: str) -> str | None:
    """The stripped value of `name`, or None when absent or blank. A NUL character is refused
    here, once for every parameter: PostgreSQL cannot compare text holding one. So is a
    parameter given twice with different values (`gender=F&gender=M`): one would be dropped
    silently. Blank repeats are not values (`age=18-40&age=`: 18-40)."""
    if query is None:
        return None
    values = query_values(query, name)
    if any("\x00" in value for value in values):
        fail(name, "Must not contain NUL characters.")
    if len(values) > 1:
        fail(name, f"Given {len(values)} different values: give one.")
    return values.pop() if values else None


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


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Far beyond any real page, and small enough that page × page_size stays a SQL bigint.
MAX_PAGE = 10_000_000


def page_params(query: Query) -> tuple[int, int]:
    """(page, page_size) of `query`; a 400 naming the parameter when out of bounds."""
    page = parse_int(query, "page", default=1, minimum=1, maximum=MAX_PAGE)
    size = parse_int(query, "page_size", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    return page, size


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


def range_to_today(start: date, end: date, *, start_field: str = "start", end_field: str = "end") -> tuple[date, date]:
    """A range of figures: one that starts after today is refused (there are none yet), and
    its end is cut at today. Days to come would count as zeros and their total would be
    compared with a whole previous period: a range reaching past today read as a collapse."""
    last = today()
    if start > last:
        fail(start_field, f"The range starts after today ({last.isoformat()}): there are no figures for it yet.")
    return range_check(start, min(end, last), start_field=start_field, end_field=end_field)


def range_check(start: date, end: date, *, start_field: str = "start", end_field: str = "end") -> tuple[date, date]:
    """Refuse a range ending before it starts or longer than MAX_RANGE_DAYS inclusive days."""
    if start > end:
        fail(start_field, f"{start_field} must be on or before {end_field}.")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        fail(start_field, "The range may not exceed 2 years.")
    return start, end
