"""What the analytics pages share: the range filter and its presets, the chart and table
shapes, and rendering a fragment or the page (400 when a filter was refused)."""

from collections.abc import Iterable
from datetime import timedelta
from html import escape
from urllib.parse import urlencode

from django.contrib.humanize.templatetags.humanize import naturaltime
from django.http import HttpResponse
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from core.csv_export import csv_render
from core.days import today
from core.pages import LEFT_OUT_PREFIX, params_leaving_out, params_or_default, render_page
from core.query_params import fail, query_values
from telemetry.models import Feature
from tenants.models import Role

from .. import params, queries, segments
from ..filters import USER_PREFIX, filter_set_parse, filters_refuse
from ..templatetags.numbers import tenths

RANGE_PRESETS = (7, 30, 90)
WEEKLY_AFTER_DAYS = 120  # longer ranges chart by week: 120 daily points are already dense


def wants_csv(request):
    return shown_value(request.GET, "format") == "csv"


def csv_download(rows, name, columns):
    """The rows a page shows (all of them, not one page) as a CSV attachment: the same file
    the API's `?format=csv` gives, for an analyst who is signed in to the pages."""
    response = HttpResponse(csv_render(rows, columns), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return response


def csv_refused(error):
    """A download asked with a refused parameter: the page shows the figures without it, next
    to the message; a file has no place for the message, so it is not made. The message is
    the page's, which goes on to say what it shows without the parameter: here nothing is."""
    refused = error.split(LEFT_OUT_PREFIX, 1)[0]
    return HttpResponse(
        f"{refused}\nNo file was made: correct or remove that parameter.\n",
        status=400,
        content_type="text/plain; charset=utf-8",
    )


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
    filters_refuse(query)
    return params.date_range(query)


def range_or_default(query):
    """(start, end, error): a bad range (or a filter no page can apply) is shown next to the
    filters, with the default range."""
    (start, end), error = params_or_default(date_range, query)
    return start, end, error


PAGE_FILTERS = ("segment", "feature", "age", "gender", "account")
GENDERS = (("F", "Female"), ("M", "Male"), ("O", "Other"))


def range_and_filters(org, query, *, refused=()):
    """(start, end, filters, error, query kept): a page's range and DESIGN's filter set (segment
    expanded); a refused or bad parameter is left out, named in the error, and the rest apply
    (`core.pages.params_leaving_out`)."""

    def parse(given):
        filters_refuse(given, refused)
        start, end = params.date_range(given)
        filters = filter_set_parse(org, given)
        if "feature" in refused and "feature" in filters:  # only a segment brings one here
            fail("segment", "This segment names a feature, which this page cannot apply.")
        return start, end, filters

    (start, end, filters), error, kept = params_leaving_out(parse, query)
    return start, end, filters, error, kept


def shown_value(query, name):
    """The value of `name` the figures use, for the pickers and links to keep: the one
    non-blank value (`age=18-40&age=` is 18-40; `QueryDict.get` takes the last, blank one),
    or "" (none, or several, which the figures refused)."""
    given = query_values(query, name)
    return given.pop() if len(given) == 1 else ""


def filter_bar(org, query, filters):
    """What the shared filter bar (`analytics/partials/filter_bar.html`) draws: the segment
    picker (the organisation's saved segments), age, gender and account (its picker), the `user.<property>`
    filters kept as hidden fields, and `filter_query` (`&name=value…`) for links that must
    keep the filters (range presets, sort headers), and `segment_return_query`, the page's own query."""
    values = {name: shown_value(query, name) for name in query}
    kept = {name: values[name] for name in PAGE_FILTERS if values.get(name)}
    kept |= {name: value for name, value in values.items() if name.startswith(USER_PREFIX) and value}
    saved = list(segments.segment_list(org).values("id", "name", "filters"))
    selected = values.get("segment") or ""
    chosen = next((s["filters"] for s in saved if str(s["id"]) == selected), None)
    return {
        "segments": saved,
        "selected_segment": selected,
        # The segment's own filters, said in words: the pickers below show only the filters
        # chosen on top of it (which replace the segment's), so picking another segment does
        # not carry this one's values along.
        "segment_summary": " · ".join(f"{name} = {value}" for name, value in sorted(chosen.items())) if chosen else "",
        "filter_age": values.get("age") or "",
        "filter_feature": values.get("feature") or "",
        "filter_gender": (values.get("gender") or "").upper(),
        "account_options": _options(queries.account_choices(org, values.get("account") or ""), values.get("account")),
        "user_filters": sorted((k, v) for k, v in kept.items() if k.startswith(USER_PREFIX)),
        "age_bands": params.AGE_BANDS,
        "genders": GENDERS,
        "filter_query": "&" + urlencode(kept) if kept else "",
        # Every parameter as the page read it (blank repeats dropped): "Save as segment"
        # comes back to the page as it was.
        "segment_return_query": urlencode({name: value for name, value in values.items() if value}),
        "any_filter": bool(filters),
    }


def _options(choices: Iterable[tuple[str, str]], selected: str | None) -> SafeString:
    """The `<option>`s of a picker of `choices` [(value, label)], `selected` marked, both
    escaped: built here, not in a template loop, which cost the account picker's few
    hundred options ~4 ms on every analytics page. The standard library's escape writes the
    same text as Django's, without its lazy-string wrapper and SafeString per call (200
    options: 1.4 → 0.3 ms)."""
    return mark_safe(
        "".join(
            f'<option value="{escape(value)}"{" selected" if value == selected else ""}>{escape(label)}</option>'
            for value, label in choices
        )
    )


def user_link(user_id):
    """An end user's id linking to their page, for the tables built in Python (the users
    table, an account's people): what `<a href="{% url 'analytics:user-detail' id %}"
    class="mono">{{ id }}</a>` prints."""
    return f'<a href="{escape(reverse("analytics:user-detail", args=[user_id]))}" class="mono">{escape(user_id)}</a>'


def seconds_or_dash(value):
    """A session time as the tables print it: "12.5 s" (`tenths`), "—" when there is none."""
    return "—" if value is None else f"{tenths(value)} s"


def time_ago(value):
    """A time as `{{ value|naturaltime }}` prints it ("3 hours ago"), escaped."""
    return escape(str(naturaltime(value)))


def feature_link(feature_id, name):
    """A feature's name linking to its page, for the tables built in Python."""
    return f'<a href="{escape(reverse("analytics:feature-detail", args=[feature_id]))}">{escape(name)}</a>'


def carry(query, names):
    """`&name=value…` for the filters a range preset link must keep."""
    kept = {name: query.get(name) for name in names if query.get(name)}
    return "&" + urlencode(kept) if kept else ""


def series_values(points):
    """(values, ISO date labels) of timeseries points."""
    return [p["value"] for p in points], [p["date"].isoformat() for p in points]


def partial_from(dates, interval, end=None):
    """The index of the first point not complete — today, the week that holds today, or a
    last week the range's `end` cuts short — or None. Charts draw it dashed: a day that has
    only begun, or three days of a week, would read as a drop."""
    last = today()
    span = timedelta(days=0 if interval == "day" else 6)
    for index, day in enumerate(dates):
        # A week is labelled with its Monday, or with `start` when the range cuts it.
        first = day if interval == "day" else day - timedelta(days=day.weekday())
        if first + span >= last or (end is not None and first + span > end):
            return index
    return None


def partial_note(interval, end):
    """What the dashed point of `partial_from` is, said under the chart."""
    if interval == "day":
        return "today so far, not complete yet."
    if end >= today():
        return "this week so far, not complete yet."
    days = end.weekday() + 1
    return f"the last week stops at {end.day} {end:%b} with the range: {days} of its 7 days."


def partial_spec(dates, interval, end):
    """A chart spec's partial point (`partial_from`) and what its tooltip adds to the value."""
    cut_week = interval == "week" and end < today()
    return {
        "partial_from": partial_from(dates, interval, end),
        "partial_label": f"{end.weekday() + 1} of 7 days" if cut_week else "so far",
    }


def line_spec(points, label, interval, end):
    values, labels = series_values(points)
    spec = {"type": "line", "labels": labels, "series": [{"label": label, "data": values}]}
    return spec | partial_spec([p["date"] for p in points], interval, end)


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
    """What an empty organisation needs to send its first event. `has_sent` is asked only
    when an empty state is drawn (the template calls it): one with events elsewhere is told
    to pick another range, not to send a first event."""
    org = request.org
    return {
        "ingest_url": request.build_absolute_uri("/api/v1/events/track"),
        "is_admin": request.user.role == Role.ADMIN,
        "has_sent": lambda: Feature.objects.filter(organization=org).exists(),
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
