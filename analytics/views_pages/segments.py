"""Saved segments in the pages: save the filters a page shows as a segment, list the
organisation's segments and delete one (analyst and above, as the API)."""

from urllib.parse import parse_qsl, urlencode, urlsplit

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import DomainError
from core.pages import org_page
from tenants.models import Role

from .. import segments
from ..filters import filter_values


def _page_filters(org, query):
    """The filters the page applied: a segment it used expanded, the filters typed on top
    winning (as the page counted them); not its range."""
    values = filter_values(org, query)
    if values.get("feature_id") and not values.get("feature"):
        values["feature"] = values["feature_id"]
    return {name: value for name, value in values.items() if value and name != "feature_id"}


def _next_page(request, raw):
    """Where to go back to: a path of this site, else the dashboard."""
    if raw and raw.startswith("/") and url_has_allowed_host_and_scheme(raw, allowed_hosts={request.get_host()}):
        return raw
    return "/"


def _back_with_segment(back: str, segment_id: int, filters: dict) -> str:
    """The page saved from, its range and other settings kept, with the new segment picked
    in place of the filters it now holds (and of the segment they came from); back on its
    first page, as after any change of filters."""
    parts = urlsplit(back)
    replaced = {*filters, "feature_id", "segment", "page"}
    kept = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name not in replaced]
    return f"{parts.path}?{urlencode([*kept, ('segment', segment_id)])}"


@org_page(Role.ANALYST)
@require_http_methods(["GET", "POST"])
def segment_new(request):
    """The filters the page had (its query string, or the form posted back) and a name: saved,
    then back to that page with the new segment picked."""
    source = request.POST if request.method == "POST" else request.GET
    back = _next_page(request, source.get("next"))
    error = None
    try:
        filters = _page_filters(request.org, source)
    except DomainError as exc:
        filters, error = {}, exc.detail
    if request.method == "POST" and not error:
        try:
            segment = segments.segment_create(request.org, name=request.POST.get("name", ""), filters=filters)
        except DomainError as exc:
            error = exc.detail
        else:
            messages.success(request, f"Segment “{segment.name}” saved: it is picked below.")
            return redirect(_back_with_segment(back, segment.pk, filters))
    context = {"filters": sorted(filters.items()), "next": back, "name": source.get("name", ""), "error": error}
    return render(request, "analytics/segment_new.html", context, status=400 if error else 200)


@org_page(Role.ANALYST)
@require_http_methods(["GET"])
def segment_list(request):
    saved = [{"segment": s, "filters": sorted(s.filters.items())} for s in segments.segment_list(request.org)]
    return render(request, "analytics/segments.html", {"active_nav": "", "saved": saved})


@org_page(Role.ANALYST)
@require_POST
def segment_delete(request, segment_id):
    segment = segments.segment_get(request.org, segment_id)
    segments.segment_delete(request.org, segment.pk)
    messages.success(request, f"Segment “{segment.name}” deleted.")
    return redirect("analytics:segments")
