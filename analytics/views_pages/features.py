"""Features: the sortable, paged table with a sparkline per feature, and one feature's detail
(its figures, chart and the insights forecast embedded by URL)."""

from html import escape

from django.core.paginator import Paginator
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from core.pages import org_page, page_get, params_leaving_out
from core.query_params import MAX_PAGE, fail, parse_int, query_text
from tenants.models import Role

from .. import exports, queries
from ..filters import filter_cache_key
from ..templatetags.numbers import tenths, thousands
from . import breakdowns, common

# sort key → (row field, column title, numeric column)
FEATURE_SORTS = {
    "name": ("feature_name", "Feature", False),
    "events": ("events", "Events", True),
    "dau": ("avg_daily_active_users", "Avg daily users", True),
    "session": ("avg_session_duration", "Avg session", True),
    "share": ("share", "Share", True),
    "change": ("change_pct", "Trend", True),
    "stickiness": ("stickiness_pct", "Stickiness", True),
}
FEATURES_PAGE_SIZE = 50
DEFAULT_FEATURE_SORT = "-events"


def feature_table_params(query) -> tuple[str, int]:
    """(sort, page) of the features table: a sort key, `-` first for high to low, and a page
    from 1 (past the last one is the last), each refused by name as the users table does."""
    sort = query_text(query, "sort") or DEFAULT_FEATURE_SORT
    if sort.lstrip("-") not in FEATURE_SORTS:
        fail("sort", f"Choose one of: {', '.join(FEATURE_SORTS)} (high to low with a - first, as in -events).")
    return sort, parse_int(query, "page", default=1, minimum=1, maximum=MAX_PAGE)


def sparkline_points(values, width=120, height=28, pad=2):
    """SVG coordinates for a sparkline (drawn server-side: no chart per table row):
    `{"line": polyline points, "area": the polygon under it}`, or None without values."""
    if not values:
        return None
    top = max(values) or 1
    step = (width - 2 * pad) / max(len(values) - 1, 1)
    line = " ".join(
        f"{pad + i * step:.1f},{height - pad - (v / top) * (height - 2 * pad):.1f}" for i, v in enumerate(values)
    )
    last_x = pad + (len(values) - 1) * step
    return {"line": line, "area": f"{pad:.1f},{height - pad:.1f} {line} {last_x:.1f},{height - pad:.1f}"}


@require_GET
@org_page(Role.ANALYST, replica=True)
def features(request):
    org = request.org
    start, end, filters, error, query = common.range_and_filters(org, request.GET)
    given = filter_cache_key(filters)
    (sort, page_number), table_error, query = params_leaving_out(feature_table_params, query)
    error = " ".join(message for message in (error, table_error) if message) or None
    field = FEATURE_SORTS[sort.lstrip("-")][0]
    rows = queries.feature_usage(org, start=start, end=end, filters=given, stickiness=True)
    sparks = queries.feature_sparklines(org, start=start, end=end, filters=given)
    rows = sorted(
        rows,
        key=lambda r: (r[field] is None, r[field] if r[field] is not None else 0),
        reverse=sort.startswith("-"),
    )
    if sort.startswith("-"):
        # Missing values (no previous period) still sort last.
        rows = [r for r in rows if r[field] is not None] + [r for r in rows if r[field] is None]
    if common.wants_csv(request):
        if error:
            return common.csv_refused(error)
        return common.csv_download(rows, "features", exports.FEATURE_USAGE_COLUMNS)
    page = page_get(Paginator(rows, FEATURES_PAGE_SIZE), page_number)
    table = page.object_list
    bar = common.filter_bar(org, query, given)
    context = {
        "active_nav": "features",
        "start": start,
        "end": end,
        "error": error,
        "presets": common.presets(start, end),
        **bar,
        "preset_query": f"&sort={sort}{bar['filter_query']}",
        "rows": table,
        "rows_html": mark_safe("".join(_feature_row(row, sparks.get(row["feature_id"], [])) for row in table)),
        "sort": sort,
        "page_obj": page,
        "page_query": f"start={start:%Y-%m-%d}&end={end:%Y-%m-%d}&sort={sort}{bar['filter_query']}",
        "period_days": (end - start).days + 1,
        # The dashboard's "Features" counts those used in the range; this table also lists
        # those used only in the period before (their trend), so the count says both when
        # they differ. A feature unused in both is left out, as the API's feature usage and
        # the CSV leave it out.
        "used_note": f"{used:,} used in this range"
        if (used := sum(1 for r in rows if r["events"])) != len(rows)
        else "",
        "columns": common.sort_columns(
            [(key, label, numeric) for key, (_, label, numeric) in FEATURE_SORTS.items()],
            sort,
            descending_first=[key for key, (_, _, numeric) in FEATURE_SORTS.items() if numeric],
        ),
        **common.first_event_context(request),
    }
    return common.render_filtered(
        request, "analytics/partials/features_table.html", "analytics/features.html", context, error
    )


def _feature_row(row, spark_values):
    """One row of the features table as HTML, built here: 50 rows of eight formatted cells
    through the template engine cost ~6 ms of the page on every request (escaped by the
    standard library, as `common._options` is). The figures print as the table's filters
    print them (`tenths`, `thousands`)."""
    key = row["feature_key"]
    key_line = "" if key == row["feature_name"] else f'<div class="muted small mono">{escape(key)}</div>'
    change = row.get("change_pct")
    if change is None:
        trend = '<span class="change change-flat">new</span>'
    else:
        arrow = "▲ +" if change > 0 else "▼ " if change < 0 else ""
        trend = f'<span class="change change-{common.change_class(change)}">{arrow}{tenths(change)}%</span>'
    sticky = row.get("stickiness_pct")
    spark = sparkline_points(spark_values)
    svg = (
        '<svg class="sparkline" width="120" height="28" viewBox="0 0 120 28" role="img" aria-label="Daily events">'
        f'<polygon class="spark-area" points="{spark["area"]}"/><polyline points="{spark["line"]}"/></svg>'
        if spark
        else ""
    )
    return (
        f"<tr><td>{common.feature_link(row['feature_id'], row['feature_name'])}{key_line}</td>"
        f'<td class="num">{thousands(row["events"])}</td>'
        f'<td class="num">{tenths(row["avg_daily_active_users"])}</td>'
        f'<td class="num">{common.seconds_or_dash(row["avg_session_duration"])}</td>'
        f'<td class="num">{tenths(row["share"])}%</td>'
        f'<td class="num">{trend}</td>'
        '<td class="num" title="DAU/MAU: average daily users ÷ users over the period" data-testid="stickiness">'
        f"{'—' if sticky is None else f'{tenths(sticky)}%'}</td>"
        f"<td>{svg}</td></tr>\n"
    )


def _forecast_url(feature_id):
    """The insights forecast fragment for a feature, when the insights pages provide one.
    Analytics may not import insights (layering), so the page embeds it by URL."""
    try:
        return reverse("insights:feature-forecast", kwargs={"feature_id": feature_id})
    except NoReverseMatch:
        return None


@require_GET
@org_page(Role.ANALYST, replica=True)
def feature_detail(request, feature_id):
    org = request.org
    feature = queries.feature_get(org, feature_id)
    # The page is one feature's: another feature filter cannot apply (a segment's feature too).
    start, end, filters, error, query = common.range_and_filters(org, request.GET, refused=("feature", "feature_id"))
    given = filter_cache_key(filters)
    interval = common.interval_for(start, end)
    figures = queries.feature_figures(org, feature=feature.pk, start=start, end=end, interval=interval, filters=given)
    points = figures["points"]
    usage_chart = {
        "type": "line",
        "labels": [p["date"].isoformat() for p in points],
        "series": [
            {"label": "Events", "data": [p["events"] for p in points]},
            {"label": "Active users", "data": [p["active_users"] for p in points]},
        ],
        **common.partial_spec([p["date"] for p in points], interval, end),
    }
    breakdown, breakdown_error = breakdowns.breakdown_or_error(query)
    error = error or breakdown_error
    if breakdown:
        # This feature's events split by the dimension, stacked.
        split = queries.breakdown_series(
            org,
            dimension=breakdown,
            metric="events",
            start=start,
            end=end,
            interval=interval,
            filters={**given, "feature": feature.pk},
        )
        usage_chart = breakdowns.breakdown_spec(
            split,
            interval=interval,
            end=end,
            style=breakdowns.breakdown_style(org, breakdown, [split]),
        )
    context = {
        "active_nav": "features",
        "feature": feature,
        "start": start,
        "end": end,
        "error": error,
        "presets": common.presets(start, end),
        **(bar := common.filter_bar(org, query, given)),
        "preset_query": bar["filter_query"] + (f"&breakdown={breakdown}" if breakdown else ""),
        "interval": interval,
        "partial_note": common.partial_note(interval, end),
        "stats": {
            "events": figures["events"],
            "peak_active": figures["peak_active_users"],
            "avg_active": figures["avg_active_users"],
            "avg_session": figures["avg_session_duration"],
            "stickiness": figures["stickiness_pct"],
        },
        "usage_chart": usage_chart,
        "breakdown": breakdown or "",
        "breakdown_label": breakdowns.breakdown_label(breakdown) if breakdown else "",
        "breakdown_choices": breakdowns.breakdown_choices(breakdown),
        "forecast_url": _forecast_url(feature.pk),
    }
    return common.render_filtered(
        request, "analytics/partials/feature_body.html", "analytics/feature_detail.html", context, error
    )
