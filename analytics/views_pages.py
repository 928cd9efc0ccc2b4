"""Analytics pages: Dashboard, Features, Users, Retention, Funnels.

Each view parses the query string with `analytics.params` (the API's parser), calls the
`analytics.queries` functions the API calls, and renders. Under htmx (a filter change, a
search keystroke, a sort click) the same view renders only the fragment that changed; the
URL is pushed by htmx, so a filtered page is shareable and the back button reloads it.
"""

import functools
from datetime import UTC, timedelta
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET

from core.exceptions import DomainError
from core.pages import org_page, page_fetched, page_get, params_or_default, render_page
from tenants.models import Role

from . import params, queries

KPIS = (
    ("total_events", "Events", ""),
    ("active_users", "Active users", ""),
    ("features_tracked", "Features", ""),
    ("sessions", "Sessions", ""),
    ("avg_session_duration", "Avg session", "s"),
)
RANGE_PRESETS = (7, 30, 90)
WEEKLY_AFTER_DAYS = 120  # longer ranges chart by week: 120 daily points are already dense
TOP_FEATURES = 10
# sort key → (row field, column title, numeric column)
FEATURE_SORTS = {
    "name": ("feature_name", "Feature", False),
    "events": ("events", "Events", True),
    "dau": ("avg_daily_active_users", "Avg daily users", True),
    "session": ("avg_session_duration", "Avg session", True),
    "share": ("share", "Share", True),
    "change": ("change_pct", "Trend", True),
}
USERS_PAGE_SIZE = 25
# Users table columns: (sort key or None, title, numeric)
USER_COLUMNS = (
    ("user_id", "User", False),
    ("email", "E-mail", False),
    ("events", "Events", True),
    ("avg_session_duration", "Avg session", True),
    (None, "Top feature", False),
    ("first_seen", "First seen", False),
    ("last_seen", "Last seen", False),
)
FEATURES_PAGE_SIZE = 50
RETENTION_WEEKS = (4, 8, 12, 26)


def _render(request, fragment, page, context, error):
    """The fragment for htmx, else the whole page; 400 when the filters were refused."""
    return render_page(request, page=page, fragment=fragment, context=context, status=400 if error else 200)


def _presets(start, end):
    """Quick ranges ending today, with the active one flagged."""
    today = params.today()
    return [
        {
            "days": days,
            "start": today - timedelta(days=days - 1),
            "end": today,
            "active": end == today and (end - start).days + 1 == days,
        }
        for days in RANGE_PRESETS
    ]


def _date_range(query):
    params.filters_supported(query, ("start", "end"))
    return params.date_range(query)


def _range_or_default(query):
    """(start, end, error): a bad range (or a filter these pages cannot apply) is shown next
    to the filters, with the default range."""
    (start, end), error = params_or_default(_date_range, query)
    return start, end, error


def _carry(query, names):
    """`&name=value…` for the filters a range preset link must keep."""
    kept = {name: query.get(name) for name in names if query.get(name)}
    return "&" + urlencode(kept) if kept else ""


def _series(points):
    """(values, ISO date labels) of timeseries points."""
    return [p["value"] for p in points], [p["date"].isoformat() for p in points]


def _line_spec(points, label):
    values, labels = _series(points)
    return {"type": "line", "labels": labels, "series": [{"label": label, "data": values}]}


def _interval(start, end):
    """Day points, or week points for a range too long to chart day by day."""
    return "week" if (end - start).days + 1 > WEEKLY_AFTER_DAYS else "day"


def _change_class(change_pct):
    if change_pct is None or abs(change_pct) < 0.05:
        return "flat"
    return "up" if change_pct > 0 else "down"


def _sort_columns(columns, sort, *, descending_first=()):
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


def _first_event_context(request):
    """What an empty organisation needs to send its first event."""
    return {
        "ingest_url": request.build_absolute_uri("/api/v1/events/track"),
        "is_admin": request.user.role == Role.ADMIN,
    }


def _feature_choices(rows, selected=None):
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


# --- Dashboard ---------------------------------------------------------------------------------


@require_GET
@org_page(Role.MEMBER)
def dashboard(request):
    if not request.user.has_role(Role.ANALYST):
        # Members land on their own activity, the one page they may see.
        return redirect("analytics:users")
    org = request.org
    args, error = params_or_default(functools.partial(params.timeseries_params, org), request.GET)
    start, end = args["start"], args["end"]
    filters = {"feature": args["feature"], "age": args["age"], "gender": args["gender"]}
    interval = _interval(start, end)

    # The API's summary filters: only the given ones (ids, so the query cache keys are stable).
    given = {k: (v.pk if k == "feature" else v) for k, v in filters.items() if v}
    summary = queries.usage_summary(org, start, end, filters=given)
    kpis = []
    for key, label, unit in KPIS:
        item = summary[key]
        kpis.append({"key": key, "label": label, "unit": unit, **item, "trend": _change_class(item["change_pct"])})
    series = {"interval": interval, "start": start, "end": end, **given}
    events = queries.timeseries(org, metric="events", **series)
    active = queries.timeseries(org, metric="active_users", **series)
    usage = queries.feature_usage(org, start=start, end=end)
    top = [row for row in usage if row["events"]][:TOP_FEATURES]
    any_filter = any(filters.values())

    context = {
        "active_nav": "dashboard",
        "start": start,
        "end": end,
        "filters": filters,
        "error": error,
        "interval": interval,
        "period_days": (end - start).days + 1,
        "presets": _presets(start, end),
        "preset_query": _carry(request.GET, ("feature", "age", "gender")),
        "kpis": kpis,
        "events_chart": _line_spec(events["points"], "Events"),
        "active_chart": _line_spec(active["points"], "Active users"),
        "top_chart": {
            "type": "hbar",
            "labels": [row["feature_name"] for row in top],
            "series": [{"label": "Events", "data": [row["events"] for row in top]}],
        },
        # Nothing in this period or the one before, unfiltered: show how to send events.
        "no_events": not any_filter and not (summary["total_events"]["value"] or summary["total_events"]["previous"]),
        "has_range_data": summary["total_events"]["value"] > 0,
        "any_filter": any_filter,
        "features": _feature_choices(usage, filters["feature"]),
        "age_bands": params.AGE_BANDS,
        "genders": (("F", "Female"), ("M", "Male"), ("O", "Other")),
        **_first_event_context(request),
    }
    return _render(request, "analytics/partials/dashboard_body.html", "analytics/dashboard.html", context, error)


# --- Features ----------------------------------------------------------------------------------


@require_GET
@org_page(Role.ANALYST)
def features(request):
    org = request.org
    start, end, error = _range_or_default(request.GET)
    sort = request.GET.get("sort") or "-events"
    if sort.lstrip("-") not in FEATURE_SORTS:
        sort = "-events"
    field = FEATURE_SORTS[sort.lstrip("-")][0]
    rows = queries.feature_usage(org, start=start, end=end)
    sparks = queries.feature_sparklines(org, start=start, end=end)
    rows = sorted(
        rows,
        key=lambda r: (r[field] is None, r[field] if r[field] is not None else 0),
        reverse=sort.startswith("-"),
    )
    if sort.startswith("-"):
        # Missing values (no previous period) still sort last.
        rows = [r for r in rows if r[field] is not None] + [r for r in rows if r[field] is None]
    page = page_get(Paginator(rows, FEATURES_PAGE_SIZE), request.GET.get("page"))
    table = []
    for row in page.object_list:
        values = sparks.get(row["feature_id"], [])
        table.append({**row, "spark": sparkline_points(values), "trend": _change_class(row.get("change_pct"))})
    context = {
        "active_nav": "features",
        "start": start,
        "end": end,
        "error": error,
        "presets": _presets(start, end),
        "rows": table,
        "sort": sort,
        "page_obj": page,
        "period_days": (end - start).days + 1,
        "columns": _sort_columns(
            [(key, label, numeric) for key, (_, label, numeric) in FEATURE_SORTS.items()],
            sort,
            descending_first=[key for key, (_, _, numeric) in FEATURE_SORTS.items() if numeric],
        ),
        **_first_event_context(request),
    }
    return _render(request, "analytics/partials/features_table.html", "analytics/features.html", context, error)


def _forecast_url(feature_id):
    """The insights forecast fragment for a feature, when the insights pages provide one.
    Analytics may not import insights (layering), so the page embeds it by URL."""
    try:
        return reverse("insights:feature-forecast", kwargs={"feature_id": feature_id})
    except NoReverseMatch:
        return None


@require_GET
@org_page(Role.ANALYST)
def feature_detail(request, feature_id):
    org = request.org
    feature = queries.feature_get(org, feature_id)
    start, end, error = _range_or_default(request.GET)
    interval = _interval(start, end)
    figures = queries.feature_figures(org, feature=feature.pk, start=start, end=end, interval=interval)
    points = figures["points"]
    context = {
        "active_nav": "features",
        "feature": feature,
        "start": start,
        "end": end,
        "error": error,
        "presets": _presets(start, end),
        "interval": interval,
        "stats": {
            "events": figures["events"],
            "peak_active": figures["peak_active_users"],
            "avg_active": figures["avg_active_users"],
            "avg_session": figures["avg_session_duration"],
        },
        "usage_chart": {
            "type": "line",
            "labels": [p["date"].isoformat() for p in points],
            "series": [
                {"label": "Events", "data": [p["events"] for p in points]},
                {"label": "Active users", "data": [p["active_users"] for p in points]},
            ],
        },
        "forecast_url": _forecast_url(feature.pk),
    }
    return _render(request, "analytics/partials/feature_body.html", "analytics/feature_detail.html", context, error)


# --- Users -------------------------------------------------------------------------------------


@require_GET
@org_page(Role.MEMBER)
def users(request):
    """Analysts see every end user; a member sees only the profiles linked to their account."""
    org = request.org
    is_member = not request.user.has_role(Role.ANALYST)
    query = request.GET.copy()
    query.setdefault("page_size", str(USERS_PAGE_SIZE))
    args, error = params_or_default(params.user_activity_params, query, {"page_size": USERS_PAGE_SIZE})
    only_account = request.user if is_member else None

    def fetch(number):
        result = queries.user_activity_page(org, **{**args, "page": number}, only_account=only_account)
        return result["results"], result["count"]

    page = page_fetched(fetch, number=args["page"], per_page=args["page_size"])
    context = {
        "active_nav": "users",
        "is_member": is_member,
        "rows": page.object_list,
        "page_obj": page,
        "search": args["search"],
        "days": args["days"],
        "sort": args["sort"],
        "columns": _sort_columns(
            USER_COLUMNS, args["sort"], descending_first=("events", "avg_session_duration", "last_seen")
        ),
        "day_choices": (7, 30, 90, 365),
        "error": error,
        **_first_event_context(request),
    }
    return _render(request, "analytics/partials/users_table.html", "analytics/users.html", context, error)


@require_GET
@org_page(Role.MEMBER)
def user_detail(request, external_id):
    org = request.org
    # A member may only open the profiles linked to their own account; anyone else's looks
    # like a missing one.
    if not request.user.has_role(Role.ANALYST) and not queries.end_user_is_own(org, external_id, request.user):
        raise Http404("Not found.")
    detail = queries.end_user_detail(org, external_id)
    context = {"active_nav": "users", "detail": detail, "timeline": _timeline(detail["timeline"])}
    return render(request, "analytics/user_detail.html", context)


def _timeline(sessions):
    """The timeline's labels, formatted here once: up to 200 events through the template's
    date filters cost more than the query that fetched them. Times are UTC, like the days."""
    shaped = []
    for s in sessions:
        start, end = s["start"].astimezone(UTC), s["end"].astimezone(UTC)
        shaped.append(
            {
                "label": f"{start:%a} {start.day} {start:%b %Y, %H:%M}",
                "until": f"{end:%H:%M}" if end != start else "",
                "session_id": s["session_id"],
                "event_count": s["event_count"],
                "events": [
                    {
                        "iso": e["timestamp"].isoformat(),
                        "time": f"{e['timestamp'].astimezone(UTC):%H:%M:%S}",
                        "feature_name": e["feature_name"],
                        "event_type": e["event_type"],
                        "duration": "" if e["session_duration"] is None else f"{e['session_duration']:.0f} s",
                    }
                    for e in s["events"]
                ],
            }
        )
    return shaped


# --- Retention ---------------------------------------------------------------------------------


def _heat_class(pct):
    if pct is None:
        return "heat-none"
    return f"heat-{min(10, max(0, round(pct / 10)))}"


@require_GET
@org_page(Role.ANALYST)
def retention(request):
    org = request.org
    args, error = params_or_default(params.retention_params, request.GET)
    data = queries.retention(org, **args)
    cohorts = []
    max_weeks = 0
    for cohort in data["cohorts"]:
        # An empty cohort has no percentages, not 0 %.
        weeks = cohort["weeks"] if cohort["size"] else [None] * len(cohort["weeks"])
        cells = [{"pct": pct, "cls": _heat_class(pct)} for pct in weeks]
        max_weeks = max(max_weeks, len(cells))
        cohorts.append({**cohort, "cells": cells})
    for cohort in cohorts:
        cohort["cells"] += [{"pct": None, "cls": "heat-none"}] * (max_weeks - len(cohort["cells"]))
    averages = queries.retention_averages(data["cohorts"])
    context = {
        "active_nav": "retention",
        "cohorts": cohorts,
        "week_numbers": list(range(max_weeks)),
        "weeks": args["weeks"],
        "week_choices": RETENTION_WEEKS,
        "error": error,
        "total_users": averages["users"],
        "avg": {"d1": averages["d1"], "d7": averages["d7"], "d30": averages["d30"]},
        "legend": [f"heat-{i}" for i in range(0, 11, 2)],
        **_first_event_context(request),
    }
    return _render(request, "analytics/partials/retention_body.html", "analytics/retention.html", context, error)


# --- Funnels -----------------------------------------------------------------------------------


@require_GET
@org_page(Role.ANALYST)
def funnels(request):
    """The builder posts repeated `step` fields (one select per step); the API's `steps`
    (comma-separated) works too, so a funnel URL from elsewhere opens here."""
    org = request.org
    query = request.GET.copy()
    chosen = [s for s in request.GET.getlist("step") if s.strip()]
    if chosen:
        query["steps"] = ",".join(chosen)
    result, error = None, None
    steps = [s for s in (query.get("steps") or "").split(",") if s.strip()]
    submitted = "steps" in query or "step" in request.GET
    start, end, _ = _range_or_default(query)
    window_days = 7
    if submitted:
        try:
            args = params.funnel_params(query)
        except DomainError as exc:
            error = exc.detail
        else:
            start, end, window_days = args["start"], args["end"], args["window_days"]
            result = queries.funnel(org, **args)
    usage = queries.feature_usage(org, start=start, end=end)
    features = _feature_choices(usage)
    if not steps:
        # A first look: the three most used features, in that order.
        steps = [row["feature_key"] for row in usage[:3]] if len(usage) >= 2 else ["", ""]
    while len(steps) < params.MIN_FUNNEL_STEPS:
        steps.append("")
    bars = []
    if result:
        first = result["steps"][0]["users"] if result["steps"] else 0
        names = {f["key"]: f["name"] for f in features}
        for step in result["steps"]:
            width = (step["users"] / first * 100) if first else 0
            bars.append({**step, "name": names.get(step["key"], step["key"]), "width": f"{width:.1f}"})
    context = {
        "active_nav": "funnels",
        "features": features,
        "steps": steps,
        "window_days": window_days,
        "start": start,
        "end": end,
        "result": result,
        "bars": bars,
        "error": error,
        "min_steps": params.MIN_FUNNEL_STEPS,
        "max_steps": params.MAX_FUNNEL_STEPS,
        **_first_event_context(request),
    }
    return _render(request, "analytics/partials/funnel_result.html", "analytics/funnels.html", context, error)
