"""What the analytics pages share: the range filter and its presets, the chart and table
shapes, and rendering a fragment or the page (400 when a filter was refused)."""

from datetime import timedelta
from urllib.parse import urlencode

from core.days import today
from core.pages import params_or_default, render_page
from core.query_params import filters_supported
from tenants.models import Role

from .. import params

RANGE_PRESETS = (7, 30, 90)
WEEKLY_AFTER_DAYS = 120  # longer ranges chart by week: 120 daily points are already dense


def render_filtered(request, fragment, page, context, error):
    """The fragment for htmx, else the whole page; 400 when the filters were refused."""
    return render_page(request, page=page, fragment=fragment, context=context, status=400 if error else 200)


def presets(start, end):
    """Quick ranges ending today, with the active one flagged."""
    last = today()
    return [
        {
            "days": days,
            "start": last - timedelta(days=days - 1),
            "end": last,
            "active": end == last and (end - start).days + 1 == days,
        }
        for days in RANGE_PRESETS
    ]


def date_range(query):
    filters_supported(query, ("start", "end"))
    return params.date_range(query)


def range_or_default(query):
    """(start, end, error): a bad range (or a filter these pages cannot apply) is shown next
    to the filters, with the default range."""
    (start, end), error = params_or_default(date_range, query)
    return start, end, error


def carry(query, names):
    """`&name=value…` for the filters a range preset link must keep."""
    kept = {name: query.get(name) for name in names if query.get(name)}
    return "&" + urlencode(kept) if kept else ""


def series_values(points):
    """(values, ISO date labels) of timeseries points."""
    return [p["value"] for p in points], [p["date"].isoformat() for p in points]


def partial_from(dates, interval):
    """The index of the first point still filling up — today, or the week that holds today —
    or None. Charts draw it dashed: a day that has only begun would read as a drop."""
    last = today()
    span = timedelta(days=0 if interval == "day" else 6)
    for index, day in enumerate(dates):
        # A week is labelled with its Monday, or with `start` when the range cuts it.
        first = day if interval == "day" else day - timedelta(days=day.weekday())
        if first + span >= last:
            return index
    return None


def line_spec(points, label, interval="day"):
    values, labels = series_values(points)
    spec = {"type": "line", "labels": labels, "series": [{"label": label, "data": values}]}
    return spec | {"partial_from": partial_from([p["date"] for p in points], interval)}


def interval_for(start, end):
    """Day points, or week points for a range too long to chart day by day."""
    return "week" if (end - start).days + 1 > WEEKLY_AFTER_DAYS else "day"


def change_class(change_pct):
    if change_pct is None or abs(change_pct) < 0.05:
        return "flat"
    return "up" if change_pct > 0 else "down"


def sort_columns(columns, sort, *, descending_first=()):
    """Header cells for a sortable table: a click on the active column flips it; a new column
    starts in its natural order (numbers and recency high-to-low, names A→Z)."""
    cells = []
    for key, label, numeric in columns:
        cell = {"key": key, "label": label, "num": numeric, "active": bool(key) and sort.lstrip("-") == key}
        cell["desc"] = cell["active"] and sort.startswith("-")
        if key:
            if cell["active"]:
                cell["next"] = key if cell["desc"] else "-" + key
            else:
                cell["next"] = "-" + key if key in descending_first else key
        cells.append(cell)
    return cells


def first_event_context(request):
    """What an empty organisation needs to send its first event."""
    return {
        "ingest_url": request.build_absolute_uri("/api/v1/events/track"),
        "is_admin": request.user.role == Role.ADMIN,
    }


def feature_choices(rows, selected=None):
    """Filter/step choices from `feature_usage` rows (the features used in the range and the
    period before it): no extra query, and no dead options that would chart nothing. A
    selected feature outside that set stays selectable."""
    choices = sorted(
        ({"id": r["feature_id"], "key": r["feature_key"], "name": r["feature_name"]} for r in rows),
        key=lambda c: c["name"].lower(),
    )
    if selected is not None and all(c["id"] != selected.pk for c in choices):
        choices.insert(0, {"id": selected.pk, "key": selected.key, "name": selected.name})
    return choices
