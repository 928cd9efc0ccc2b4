"""Insights pages: the Insights page (narrative, anomalies, charts, forecast) and the forecast
fragment the feature detail page embeds. The Webhooks tab of Settings is `views_settings`.

Views validate query parameters, call one insights function and render.
"""

from datetime import date, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from analytics import queries as analytics_queries
from core.exceptions import DomainError
from core.pages import is_htmx, org_page, params_or_default
from telemetry.models import Feature
from tenants.models import Role

from . import narrative, params, queries, services
from .explain import explanation_phrase
from .forecast import usage_prediction
from .models import Anomaly

ANOMALY_PAGE_SIZE = 25
# As many as the ranking beside the chart lists, so the two cards name the same number.
ZSCORE_FEATURES = queries.UNUSUAL_FEATURES_SHOWN
FORECAST_FEATURE_CHOICES = 15
FORECAST_DAYS = 14
FORECAST_DAY_CHOICES = (7, 14, 30)
FORECAST_HISTORY_DAYS = 28
# Chart data and forecasts change only when a rollup runs; the rollup generation in the key
# drops them all at once, the timeout bounds what a missed bump could leave behind.
PAGE_CACHE_SECONDS = 6 * 3600
METRIC_LABELS = {
    "event_count": "Events",
    "avg_session_duration": "Avg session (s)",
    "daily_active_users": "Daily active users",
}
METRIC_PHRASES = {
    "event_count": "events",
    "avg_session_duration": "session length",
    "daily_active_users": "daily active users",
}
# --- Insights page -------------------------------------------------------------------------


def zscore_chart_spec(charts: dict) -> dict:
    """The strongest outliers' z-scores per metric, for app.js's Chart.js specs."""
    top = charts["features"][:ZSCORE_FEATURES]
    return {
        "type": "hbar",
        "labels": [f["feature_name"] or f["feature_key"] for f in top],
        "series": [
            {"label": METRIC_LABELS.get(metric, metric), "data": [f["z_scores"][metric] for f in top]}
            for metric in charts["metrics"]
        ],
    }


def histogram_chart_spec(charts: dict) -> dict:
    return {
        "type": "bar",
        "labels": [f"{b['lower']:.2f}–{b['upper']:.2f}" for b in charts["histogram"]],
        "series": [{"label": "Features", "data": [b["count"] for b in charts["histogram"]]}],
    }


def charts_summary(org, *, start: date, end: date) -> dict:
    """What the page shows of `chart_data`: the two chart specs and the forecast picker's
    busiest features (kept small: it is cached, and an organisation may have thousands)."""
    charts = services.chart_data(org, start=start, end=end)
    busiest = sorted(charts["features"], key=lambda f: -f["metrics"]["event_count"])[:FORECAST_FEATURE_CHOICES]
    return {
        "chart_window": {"start": charts["start"], "end": charts["end"], "threshold": charts["threshold"]},
        "zscore_spec": zscore_chart_spec(charts) if charts["features"] else None,
        "histogram_spec": histogram_chart_spec(charts) if charts["features"] else None,
        "forecast_features": [{"feature_id": f["feature_id"], "feature_name": f["feature_name"]} for f in busiest],
    }


def forecast_context(org, feature, days: int) -> dict:
    """One feature's forecast band after its last weeks of actual events."""
    prediction = usage_prediction(org, days=days, feature=feature)
    context = {
        "feature": feature,
        "days": days,
        "day_choices": FORECAST_DAY_CHOICES,
        "spec": None,
        "spec_id": f"forecast-spec-{feature.pk}",
    }
    if not prediction["features"]:
        return context
    points = prediction["features"][0]["points"]
    first = date.fromisoformat(points[0]["date"])
    history = analytics_queries.timeseries(
        org,
        metric="events",
        interval="day",
        start=first - timedelta(days=FORECAST_HISTORY_DAYS),
        end=first - timedelta(days=1),
        feature=feature.pk,
    )["points"]
    n, pad = len(history), [None] * len(history)
    actual = [p["value"] for p in history]
    # The forecast line starts on the last actual day so the two lines join.
    joined = [None] * (n - 1) + [actual[-1]] if n else []
    context.update(
        spec={
            "type": "line",
            # ISO days: app.js formats them in the reader's locale, like the other charts.
            "labels": [p["date"].isoformat() for p in history] + [p["date"] for p in points],
            "series": [
                {"label": "Events", "data": actual + [None] * len(points)},
                {"label": "Forecast", "data": joined + [p["value"] for p in points], "dashed": True},
            ],
            "band": {
                "label": "80 % interval",
                "lower": pad + [p["lower"] for p in points],
                "upper": pad + [p["upper"] for p in points],
            },
        },
        total=round(sum(p["value"] for p in points)),
        total_lower=round(sum(p["lower"] for p in points)),
        total_upper=round(sum(p["upper"] for p in points)),
        start=first,
        end=date.fromisoformat(points[-1]["date"]),
    )
    return context


@analytics_queries.cached(ttl_seconds=PAGE_CACHE_SECONDS)
def _forecast_cached(org, feature, days):
    return forecast_context(org, feature, days)


@analytics_queries.cached(ttl_seconds=PAGE_CACHE_SECONDS)
def _charts_cached(org, start, end):
    return charts_summary(org, start=start, end=end)


def _with_labels(anomalies):
    for anomaly in anomalies:
        anomaly.metric_label = METRIC_PHRASES.get(anomaly.metric, anomaly.metric.replace("_", " "))
        anomaly.why = explanation_phrase(anomaly.explanation)
    return anomalies


def _unusual_rows(rows):
    """The ranking's rows with the metric that sets each feature apart (its largest |z|)."""
    for row in rows:
        z_scores = (row.details or {}).get("z_scores") or {}
        if z_scores:
            metric = max(z_scores, key=lambda name: abs(z_scores[name]))
            row.driver = f"{METRIC_LABELS.get(metric, metric)} {'above' if z_scores[metric] > 0 else 'below'} the crowd"
            row.driver_z = z_scores[metric]
        else:
            row.driver, row.driver_z = "", None
    return rows


def _anomalies_context(request, *, open_anomalies: int | None = None):
    """The anomalies table: a page of the filtered time-series anomalies and the open
    count in its heading (read here unless the caller already has it)."""
    filters, error = params_or_default(params.anomaly_list_params, request.GET)
    page = Paginator(services.anomalies_list(request.org, **filters), ANOMALY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    _with_labels(page.object_list)
    return {
        "anomalies_page": page,
        "open_anomalies": queries.anomalies_open_count(request.org) if open_anomalies is None else open_anomalies,
        "anomaly_filters": {k: v for k, v in filters.items() if v and k in ("status", "severity")},
        "anomalies_error": error,
        "status_choices": Anomaly.Status.choices,
        "severity_choices": Anomaly.Severity.choices,
        "is_admin": request.user.has_role(Role.ADMIN),
    }


@org_page(Role.ANALYST, replica=True)
@require_GET
def insights(request):
    org = request.org
    if is_htmx(request) and request.htmx.target == "anomalies-section":
        # Filter and page changes re-render only the table.
        return render(request, "insights/partials/anomalies.html", _anomalies_context(request))
    window = params.chart_params({})
    charts = _charts_cached(org, window["start"], window["end"])
    insight = narrative.insight_current(org)
    context = {
        "active_nav": "insights",
        "insight": insight,
        "unusual_features": _unusual_rows(queries.unusual_features(org)),
        **charts,
        # The narrative was written with the current open count (insight_current checks).
        **_anomalies_context(request, open_anomalies=insight.open_anomalies or 0),
    }
    if charts["forecast_features"]:
        # The cached summary already names the busiest feature: enough for the forecast,
        # which needs only its id and a label, so no feature row is read here.
        busiest = charts["forecast_features"][0]
        feature = Feature(pk=busiest["feature_id"], organization=org, name=busiest["feature_name"])
        context.update(_forecast_cached(org, feature, FORECAST_DAYS), has_forecast=True)
    return render(request, "insights/insights.html", context)


@org_page(Role.ADMIN)
@require_POST
def anomaly_status(request, anomaly_id):
    """Acknowledge, resolve or reopen; HTMX swaps the row, a plain post returns to the page."""
    try:
        anomaly = services.anomaly_set_status(
            request.org, anomaly_id, request.POST.get("status", ""), user=request.user
        )
    except DomainError as exc:
        if exc.status_code == 404:
            raise
        return HttpResponseBadRequest(exc.detail)
    if is_htmx(request):
        # The row, and out of band the heading's open count and the narrative, which says
        # how many are open: both stayed at the old count until a reload. The narrative is
        # the one a reload would show (`insight_current` writes it anew for the new count).
        row = render_to_string(
            "insights/partials/anomaly_row.html",
            {"anomaly": _with_labels([anomaly])[0], "is_admin": True},
            request=request,
        )
        insight = narrative.insight_current(request.org)
        badge = render_to_string(
            "insights/partials/open_count.html",
            {"open_anomalies": insight.open_anomalies or 0, "oob": True},
        )
        story = render_to_string(
            "insights/partials/narrative.html", {"insight": insight, "is_admin": True, "oob": True}, request=request
        )
        return HttpResponse(row + badge + story)
    messages.success(request, f"Anomaly marked {anomaly.get_status_display().lower()}.")
    return redirect("insights:index")


@org_page(Role.ADMIN)
@require_POST
def narrative_refresh(request):
    insight = narrative.insight_current(request.org, refresh=True)
    if is_htmx(request):
        return render(request, "insights/partials/narrative.html", {"insight": insight, "is_admin": True})
    return redirect("insights:index")


@org_page(Role.ANALYST, replica=True)
@require_GET
def feature_forecast(request, feature_id=None):
    """The forecast of one feature: an HTML fragment for HTMX (`hx-get` it into any page;
    app.js draws the chart on swap), or `?format=json` for the numbers."""
    feature_id = feature_id if feature_id is not None else request.GET.get("feature")
    feature = analytics_queries.feature_get(request.org, feature_id)
    try:
        days = params.prediction_params(request.GET)["days"]
    except DomainError as exc:
        return HttpResponseBadRequest(exc.detail)
    if request.GET.get("format") == "json":
        return JsonResponse(usage_prediction(request.org, days=days, feature=feature))
    return render(request, "insights/partials/forecast.html", _forecast_cached(request.org, feature, days))
