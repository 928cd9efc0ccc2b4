"""Number filters for the tables that print hundreds of figures."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django import template
from django.template.defaultfilters import floatformat

register = template.Library()

_TENTH = Decimal("0.1")


@register.filter(is_safe=True)
def tenths(value: Any) -> str:
    """The text of `floatformat:1` (rounded half up, never "-0.0"; this site's locale groups
    no digits), without its localisation pass: a table of 50 features prints 250 figures,
    and `floatformat` cost the Features page ~10 ms of its ~25 on a cache hit."""
    if isinstance(value, bool) or value is None or value == "":
        return floatformat(value, 1)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return floatformat(value, 1)
    if not number.is_finite():
        return floatformat(value, 1)
    rounded = number.quantize(_TENTH, ROUND_HALF_UP)
    return str(abs(rounded) if rounded == 0 else rounded)
