"""Retention (weekly cohorts as a heat map, D1/D7/D30 weighted by cohort) and Funnels (the
step builder and each step's conversion)."""

import functools

from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from core.exceptions import DomainError
from core.pages import org_page, params_leaving_out
from tenants.models import Role

from .. import params, queries
from ..filters import filter_cache_key
from ..templatetags.numbers import whole
from . import common

RETENTION_WEEKS = (4, 8, 12, 26)


def _heat_class(pct):
    if pct is None:
        return "heat-none"
    return f"heat-{min(10, max(0, round(pct / 10)))}"


def _heat_cells(weeks, width):
    """A cohort's row of the heat map as HTML, `width` cells (blank past its last week), built
    here: through the template engine, the 676 cells of 26 weeks were most of the page's 11-17
    ms of rendering (5 ms since). Each shows its percentage as `floatformat:0` prints it
    (`whole`)."""
    cells = [f'<td class="cell {_heat_class(pct)}">{"" if pct is None else f"{whole(pct)}%"}</td>' for pct in weeks]
    cells += ['<td class="cell heat-none"></td>'] * (width - len(weeks))
    return mark_safe("".join(cells))


@require_GET
@org_page(Role.ANALYST, replica=True)
def retention(request):
    org = request.org
    args, error, query = params_leaving_out(functools.partial(params.retention_params, org), request.GET)
    given = filter_cache_key(args["filters"])
    data = queries.retention(org, weeks=args["weeks"], end=args["end"], filters=given)
    max_weeks = max((len(cohort["weeks"]) for cohort in data["cohorts"]), default=0)
    cohorts = [{**cohort, "cells_html": _heat_cells(cohort["weeks"], max_weeks)} for cohort in data["cohorts"]]
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
        **common.filter_bar(org, query, given),
        **common.first_event_context(request),
    }
    return common.render_filtered(
        request, "analytics/partials/retention_body.html", "analytics/retention.html", context, error
    )


# --- Funnels -----------------------------------------------------------------------------------


@require_GET
@org_page(Role.ANALYST, replica=True)
def funnels(request):
    """The builder posts repeated `step` fields (one select per step); the API's `steps`
    (comma-separated) works too, so a funnel URL from elsewhere opens here."""
    org = request.org
    query = request.GET.copy()
    chosen = [s.strip() for s in request.GET.getlist("step") if s.strip()]
    result, error = None, None
    steps = chosen or [s.strip() for s in (query.get("steps") or "").split(",") if s.strip()]
    submitted = "steps" in query or "step" in request.GET
    start, end, _ = common.range_or_default(query)
    window_days = 7
    if submitted and len(steps) < params.MIN_FUNNEL_STEPS:
        # The builder's own words: it has a select per step, not the API's comma-separated list.
        error = f"Choose at least {params.MIN_FUNNEL_STEPS} steps."
    elif submitted:
        try:
            args = params.funnel_params(org, query, listed=chosen or None)
        except DomainError as exc:
            # The builder has no "steps" field to name: that message alone.
            error = exc.errors["steps"][0] if "steps" in exc.errors else exc.detail
        else:
            start, end, window_days = args["start"], args["end"], args["window_days"]
            # A feature's name or id typed into a step is shown as the key it stands for,
            # which its caption then names.
            steps = list(args["steps"])
            result = queries.funnel(org, **{**args, "filters": filter_cache_key(args["filters"])})
    usage = queries.feature_usage(org, start=start, end=end)
    features = common.feature_choices(usage)
    suggested = not steps
    if suggested:
        # A first look: the three most used features, in that order.
        steps = [row["feature_key"] for row in usage[:3]] if len(usage) >= 2 else ["", ""]
    while len(steps) < params.MIN_FUNNEL_STEPS:
        steps.append("")
    names = {f["key"]: f["name"] for f in features}
    # The choices hold only the features used around the range: a step naming another of the
    # organisation's features is that feature, not an event type.
    if unlisted := {key for key in steps if key and key not in names}:
        found = queries.value_names(org, "feature", unlisted)
        names |= found
        # In the builder's list too, so its caption names the step when it is typed again.
        features += [{"id": None, "key": key, "name": name} for key, name in sorted(found.items())]
    bars = []
    if result:
        first = result["steps"][0]["users"] if result["steps"] else 0
        # A step that names no feature key is an event type; one nobody sent in the range
        # says so, as a mistyped key or a feature's name would otherwise read as a true zero.
        empty = [s["key"] for s in result["steps"] if s["kind"] == "event_type" and not s["users"]]
        seen = queries.event_types_seen(org, empty, start, end) if empty else set()
        for step in result["steps"]:
            width = (step["users"] / first * 100) if first else 0
            unmatched = step["key"] in empty and step["key"] not in seen
            bars.append(
                {**step, "name": names.get(step["key"], step["key"]), "width": f"{width:.1f}", "unmatched": unmatched}
            )
    context = {
        "active_nav": "funnels",
        "features": features,
        # Keys such as `feature_50` say little: each step shows its feature's name under it.
        "steps": [{"key": key, "name": names.get(key) if key else ""} for key in steps],
        "filled_steps": sum(1 for key in steps if key),
        "suggested": suggested,
        "window_days": window_days,
        "start": start,
        "end": end,
        "result": result,
        "bars": bars,
        "error": error,
        "min_steps": params.MIN_FUNNEL_STEPS,
        "max_steps": params.MAX_FUNNEL_STEPS,
        **common.filter_bar(org, query, {}),
        **common.first_event_context(request),
    }
    return common.render_filtered(
        request, "analytics/partials/funnel_result.html", "analytics/funnels.html", context, error
    )
