"""The dashboard: KPIs against the previous period, events and active users over time, the
top features; filtered by range, feature, age band and gender."""

import functools

from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from core.pages import org_page, params_leaving_out
from tenants.models import Role

from .. import params, queries
from ..filters import filter_cache_key
from . import breakdowns, common

KPIS = (
    ("total_events", "Events", ""),
    ("active_users", "Active users", ""),
    ("features_tracked", "Features", ""),
    ("sessions", "Sessions", ""),
    ("avg_session_duration", "Avg session", "s"),
)
TOP_FEATURES = 10


@require_GET
@org_page(Role.MEMBER, replica=True)
def dashboard(request):
    if not request.user.has_role(Role.ANALYST):
        # Members land on their own activity, the one page they may see.
        return redirect("analytics:users")
    org = request.org
    args, error, query = params_leaving_out(functools.partial(params.timeseries_params, org), request.GET)
    start, end = args["start"], args["end"]
    filters = {k: args[k] for k in ("feature", "age", "gender", "account", "user_properties")}
    interval = common.interval_for(start, end)

    # The API's summary filters: only the given ones (ids, so the query cache keys are stable).
    given = filter_cache_key(filters)
    summary = queries.usage_summary(org, start, end, filters=given)
    kpis = []
    for key, label, unit in KPIS:
        item = summary[key]
        kpis.append(
            {"key": key, "label": label, "unit": unit, **item, "trend": common.change_class(item["change_pct"])}
        )
    # The Top features chart answers the same filters as the KPIs above it.
    usage = queries.feature_usage(org, start=start, end=end, filters=given)
    top = [row for row in usage if row["events"]][:TOP_FEATURES]
    breakdown, breakdown_error = breakdowns.breakdown_or_error(query)
    error = error or breakdown_error
    if breakdown:
        charts = _breakdown_charts(org, breakdown, start=start, end=end, interval=interval, filters=given, top=top)
    else:
        series = {"interval": interval, "start": start, "end": end, **given}
        events = queries.timeseries(org, metric="events", **series)
        active = queries.timeseries(org, metric="active_users", **series)
        charts = {
            "events_chart": common.line_spec(events["points"], "Events", interval, end),
            "active_chart": common.line_spec(active["points"], "Active users", interval, end),
            "top_chart": {
                "type": "hbar",
                "labels": [row["feature_name"] for row in top],
                "series": [{"label": "Events", "data": [row["events"] for row in top]}],
            },
        }
    any_filter = any(filters.values())
    bar = common.filter_bar(org, query, given)
    # A person breakdown's stacks sum to less than the Events figure: said, not hidden.
    anonymous = (
        queries.breakdown_anonymous_events(org, dimension=breakdown, start=start, end=end, filters=given)
        if breakdown
        else None
    )

    context = {
        "active_nav": "dashboard",
        "start": start,
        "end": end,
        "filters": filters,
        "error": error,
        "interval": interval,
        "partial_note": common.partial_note(interval, end),
        "period_days": (end - start).days + 1,
        "presets": common.presets(start, end),
        "preset_query": bar["filter_query"] + (f"&breakdown={breakdown}" if breakdown else ""),
        "kpis": kpis,
        **charts,
        "breakdown": breakdown or "",
        "breakdown_label": breakdowns.breakdown_label(breakdown) if breakdown else "",
        "anonymous_events": anonymous or 0,
        "raw_events_from": queries.breakdown_raw_events_from(breakdown, start) if breakdown else None,
        "breakdown_choices": breakdowns.breakdown_choices(breakdown),
        # Nothing in this period or the one before, unfiltered: show how to send events.
        "no_events": not any_filter and not (summary["total_events"]["value"] or summary["total_events"]["previous"]),
        "has_range_data": summary["total_events"]["value"] > 0,
        "any_filter": any_filter,
        "features": common.feature_choices(usage, filters["feature"]),
        **bar,
        **common.first_event_context(request),
    }
    return common.render_filtered(
        request, "analytics/partials/dashboard_body.html", "analytics/dashboard.html", context, error
    )


def _breakdown_charts(org, breakdown, *, start, end, interval, filters, top):
    """The three charts split by `breakdown`: events stacked per day or week, active users
    one line per value, and the top features' events stacked per value."""
    split = {"dimension": breakdown, "start": start, "end": end, "interval": interval, "filters": filters}
    events = queries.breakdown_series(org, metric="events", **split)
    active = queries.breakdown_series(org, metric="active_users", **split)
    per_feature = queries.breakdown_by_feature(org, dimension=breakdown, start=start, end=end, filters=filters)
    keys = []
    for row in top:
        keys += [part["key"] for part in per_feature.get(row["feature_id"], []) if part["key"] not in keys]
    keys.sort(key=lambda key: key == "other")  # "other" last, as in the legend of the other charts
    values = {row["feature_id"]: {p["key"]: p["value"] for p in per_feature.get(row["feature_id"], [])} for row in top}
    style = breakdowns.breakdown_style(org, breakdown, [events, active, [{"key": k} for k in keys]])
    return {
        "events_chart": breakdowns.breakdown_spec(events, interval=interval, end=end, style=style),
        "active_chart": breakdowns.breakdown_spec(active, interval=interval, end=end, chart_type="line", style=style),
        "top_chart": {
            "type": "hbar",
            "stacked": True,
            "labels": [row["feature_name"] for row in top],
            "series": style.chart_series((key, [values[row["feature_id"]].get(key, 0) for row in top]) for key in keys),
        },
    }
