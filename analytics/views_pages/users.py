"""Users: the searchable, sortable, paged table of end users (a member sees only their own),
and one end user's profile and timeline."""

import functools
from datetime import UTC

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.pages import org_page, page_fetched, params_or_default
from tenants.models import Role

from .. import params, queries
from ..filters import filter_cache_key
from . import common

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


@require_GET
@org_page(Role.MEMBER, replica=True)
def users(request):
    """Analysts see every end user; a member sees only the profiles linked to their account."""
    org = request.org
    is_member = not request.user.has_role(Role.ANALYST)
    query = request.GET.copy()
    query.setdefault("page_size", str(USERS_PAGE_SIZE))
    args, error = params_or_default(
        functools.partial(params.user_activity_params, org), query, {"page_size": USERS_PAGE_SIZE}
    )
    args["filters"] = filter_cache_key(args["filters"])
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
        "columns": common.sort_columns(
            USER_COLUMNS, args["sort"], descending_first=("events", "avg_session_duration", "last_seen")
        ),
        "day_choices": (7, 30, 90, 365),
        **({} if is_member else common.filter_bar(org, request.GET, args["filters"])),
        "error": error,
        **common.first_event_context(request),
    }
    return common.render_filtered(
        request, "analytics/partials/users_table.html", "analytics/users.html", context, error
    )


@require_GET
@org_page(Role.MEMBER, replica=True)
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
