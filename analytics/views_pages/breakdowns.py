"""What the pages' breakdown charts share: the picker's choices, one colour per value within
a chart (and the same across a page's charts where it can), the values' names, and the
chart spec of a breakdown's series."""

from collections.abc import Iterable, Sequence

from core.exceptions import DomainError

from .. import params, queries
from .common import GENDERS, partial_spec

BREAKDOWN_CHOICES = (
    ("", "No breakdown"),
    ("feature", "Feature"),
    ("event_type", "Event type"),
    ("age", "Age band"),
    ("gender", "Gender"),
    ("account", "Account"),
)
OTHER_COLOR = "#9ca3af"
# Values drawn in this order, not by their size: the age bands from young to old, then those
# without an age, then "other".
VALUE_ORDER = {"age": params.AGE_BANDS}


def breakdown_or_error(query):
    """(dimension or None, error) of `?breakdown=`."""
    try:
        return params.breakdown_param(query), None
    except DomainError as exc:
        return None, exc.detail


def breakdown_choices(selected):
    """The picker's options; a dimension typed in the URL (user.plan, event.source) is kept."""
    choices = list(BREAKDOWN_CHOICES)
    if selected and all(value != selected for value, _ in choices):
        label = breakdown_label(selected)
        choices.append((selected, label[:1].upper() + label[1:]))  # the property's name as typed
    return choices


def breakdown_label(dimension: str) -> str:
    """A dimension in words, as the charts' subtitles say it: "event type", "age band",
    "user property plan", "event property burst"."""
    named = dict(BREAKDOWN_CHOICES).get(dimension)
    if named and dimension:
        return named.lower()
    source, _, name = dimension.partition(".")
    return f"{source} property {name}"


# Ten, as a breakdown shows ten values and "other" (grey): no two series share a colour.
BREAKDOWN_PALETTE = (
    "#4f46e5", "#0ea5e9", "#10b981", "#f59e0b", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#84cc16", "#f97316",
)  # fmt: skip


class SeriesStyle:
    """How a page draws one breakdown's values in all its charts: each value keeps the colour
    it first got (so an account is one colour in the events and the users charts), "other"
    grey, and each value's name (a feature's or an account's, not its key). Within one chart
    no two values share a colour: the charts rank their values differently, so a page can
    show more than ten values in all, and a value whose colour another value of the chart
    already took gets a free one there."""

    def __init__(self, names=None, order: Sequence[str] = ()):
        self.names = names or {}
        self.order = order
        self.colors: dict[str, str] = {}

    def chart_series(self, keyed_data: Iterable[tuple[str, list]]) -> list[dict]:
        """The series of one chart, one per (key, data), at most ten keys besides "other"."""
        pairs = list(keyed_data)
        if self.order:
            pairs.sort(key=lambda pair: self._rank(pair[0]))
        chosen: dict[str, str] = {}
        # The values that have a colour keep it first, then the others take the free ones:
        # a new value listed before them would otherwise take one of theirs.
        for key, _ in pairs:
            color = self.colors.get(key)
            if key != "other" and color is not None and color not in chosen.values():
                chosen[key] = color
        for key, _ in pairs:
            if key != "other" and key not in chosen:
                chosen[key] = self._free_color(set(chosen.values()))
                self.colors.setdefault(key, chosen[key])
        return [
            # "other" is the rest, even when a feature or an account is named "other".
            {"label": key, "data": data, "color": OTHER_COLOR}
            if key == "other"
            else {"label": self.names.get(key, key), "data": data, "color": chosen[key]}
            for key, data in pairs
        ]

    def _rank(self, key: str) -> tuple[int, int]:
        if key in self.order:
            return 0, self.order.index(key)
        return (2 if key == "other" else 1), 0

    def _free_color(self, taken: set[str]) -> str:
        """A colour not in this chart: one no value holds yet when there is one, so the
        values still to come keep theirs."""
        free = [color for color in BREAKDOWN_PALETTE if color not in taken]
        held = set(self.colors.values())
        # A breakdown shows at most ten values besides "other", so one is always free.
        return next((color for color in free if color not in held), free[0])


def breakdown_style(org, dimension, series_lists):
    """The `SeriesStyle` of a page's breakdown by `dimension` whose charts show `series_lists`:
    its values' names (`breakdown_names`) and order (`VALUE_ORDER`)."""
    return SeriesStyle(breakdown_names(org, dimension, series_lists), VALUE_ORDER.get(dimension, ()))


def breakdown_names(org, dimension, series_lists):
    """{value: name} for the values in `series_lists` of a breakdown by `dimension`: a gender
    as the filter says it, a feature's or an account's name (`queries.value_names`)."""
    if dimension == "gender":
        return dict(GENDERS)
    return queries.value_names(org, dimension, {s["key"] for series in series_lists for s in series})


def breakdown_spec(series, *, interval, end, chart_type="bar", style=None):
    """A stacked bar (or multi-line) chart of a breakdown's series, drawn by `style` (a page's
    `SeriesStyle`; a fresh one without), its partial last point marked as `line_spec`'s."""
    style = style or SeriesStyle()
    dates = [p["date"] for p in series[0]["points"]] if series else []
    return {
        "type": chart_type,
        "stacked": chart_type == "bar",
        "labels": [day.isoformat() for day in dates],
        "series": style.chart_series((s["key"], [p["value"] for p in s["points"]]) for s in series),
        **partial_spec(dates, interval, end),
    }
