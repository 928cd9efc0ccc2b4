"""Number and day filters for the tables that print hundreds of figures: each prints what
the Django filter it stands for prints, without the localisation pass that makes those cost
10-40 µs a call (a table of 50 rows prints a few hundred)."""

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma
from django.template.defaultfilters import date as date_filter
from django.template.defaultfilters import floatformat

register = template.Library()

_TENTH = Decimal("0.1")
_ONE = Decimal("1")


def _fixed(value: Any, step: Decimal) -> str | None:
    """`value` rounded half up to a multiple of `step` as `floatformat` prints it (never
    "-0"), or None for what only `floatformat` knows how to print."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not number.is_finite():
        return None
    try:
        rounded = number.quantize(step, ROUND_HALF_UP)
    except InvalidOperation:  # more digits than the context holds (~1e27): floatformat's own way
        return None
    return str(abs(rounded) if rounded == 0 else rounded)


@register.filter(is_safe=True)
def tenths(value: Any) -> str:
    """The text of `floatformat:1` (rounded half up, never "-0.0"; this site's locale groups
    no digits), without its localisation pass: a table of 50 features prints 250 figures,
    and `floatformat` cost the Features page ~10 ms of its ~25 on a cache hit."""
    text = _fixed(value, _TENTH)
    return floatformat(value, 1) if text is None else text


@register.filter(is_safe=True)
def whole(value: Any) -> str:
    """The text of `floatformat:0`, as `tenths` is of `floatformat:1`: the retention heat map
    prints up to 26 × 26 percentages."""
    text = _fixed(value, _ONE)
    return floatformat(value, 0) if text is None else text


@register.filter(is_safe=True)
def thousands(value: Any) -> Any:
    """The text of `intcomma` for an integer ("1,234,567"; this site's locale groups by
    thousands with a comma); anything else goes to `intcomma` itself."""
    if type(value) is int:
        return f"{value:,}"
    return intcomma(value)


# Django's "M": the month's three-letter English abbreviation (the interface is English only).
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@register.filter(expects_localtime=True, is_safe=False)
def day(value: Any) -> Any:
    """The text of `date:"j M Y"` ("4 Mar 2026") for a date or a datetime, taken as given: in a
    template the engine has already put an aware datetime in the current time zone, as it
    does for `date`. Anything else goes to `date` itself."""
    if not isinstance(value, date):
        return date_filter(value, "j M Y")
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year:04d}"


@register.filter(expects_localtime=True, is_safe=False)
def iso_day(value: Any) -> Any:
    """The text of `date:"Y-m-d"` ("2026-03-04") for a date or a datetime, taken as given (as
    `day`): the range links and inputs of every analytics page print a dozen or more, at
    ~40 µs a call through `date`. Anything else goes to `date` itself."""
    if not isinstance(value, date):
        return date_filter(value, "Y-m-d")
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
