"""Users: the searchable, sortable, paged table of end users (a member sees only their own),
and one end user's profile and timeline."""

import functools
from datetime import UTC
from html import escape
from urllib.parse import quote

from django.http import Http404
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.timezone import template_localtime
from django.views.decorators.http import require_GET

from core.exceptions import DomainError, NotFound
from core.pages import org_page, page_fetched, params_leaving_out, params_or_default, wants_fragment
from core.query_params import fail
from tenants.models import Role

from .. import exports, params, queries
from ..filters import filter_cache_key
from ..queries.end_user import TIMELINE_LIMIT
from ..templatetags.numbers import day, thousands
from . import common

USERS_PAGE_SIZE = 25
SESSION_ID_SHOWN = 18  # a longer session id is cut, its whole value is in the API
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
    args, error, query = params_leaving_out(
        functools.partial(params.user_activity_params, org), query, {"page_size": USERS_PAGE_SIZE}
    )
    args["filters"] = filter_cache_key(args["filters"])
    only_member = request.user if is_member else None
    if common.wants_csv(request) and error and not is_member:
        return common.csv_refused(error)
    if common.wants_csv(request) and not is_member:
        rows = queries.user_activity_page(org, **{**args, "page_size": None})["results"]
        return common.csv_download(rows, "users", exports.USER_ACTIVITY_COLUMNS)

    def fetch(number):
        result = queries.user_activity_page(org, **{**args, "page": number}, only_member=only_member)
        return result["results"], result["count"]

    page = page_fetched(fetch, number=args["page"], per_page=args["page_size"])
    bar = {} if is_member else common.filter_bar(org, query, args["filters"])
    # The top feature by name (the API answers its key), one read for the page's rows.
    names = queries.value_names(org, "feature", {row["top_feature"] for row in page.object_list if row["top_feature"]})
    rows = page.object_list
    context = {
        "active_nav": "users",
        "is_member": is_member,
        "csv_download": not is_member,
        "rows": rows,
        "rows_html": mark_safe("".join(_user_row(row, names) for row in rows)),
        "page_obj": page,
        "search": args["search"],
        "days": args["days"],
        "sort": args["sort"],
        "page_query": f"search={quote(args['search'])}&days={args['days']}&sort={args['sort']}"
        + bar.get("filter_query", ""),
        "columns": common.sort_columns(
            USER_COLUMNS, args["sort"], descending_first=("events", "avg_session_duration", "last_seen")
        ),
        "day_choices": (7, 30, 90, 365),
        **bar,
        "segment_summary_in_fragment": True,
        "error": error,
        **common.first_event_context(request),
    }
    return common.render_filtered(
        request, "analytics/partials/users_table.html", "analytics/users.html", context, error
    )


def _user_row(row, feature_names):
    """One row of the users table as HTML, built here as the features table's is
    (`features._feature_row`): 25 rows of seven formatted cells through the template engine
    cost ~3 ms of the page. The top feature shows by name (the API answers its key), the
    days and times as `day` and `naturaltime` print them in a template."""
    top = row["top_feature"]
    top_cell = f'<span title="{escape(top)}">{escape(feature_names.get(top, top))}</span>' if top else "—"
    # As the template engine hands them over: `day` the day in the current time zone,
    # `naturaltime` the value as stored (it takes no local time).
    first_seen = template_localtime(row["first_seen"])
    return (
        f'<tr data-testid="user-row"><td>{common.user_link(row["user_id"])}</td>'
        f"<td>{escape(row['email'] or '—')}</td>"
        f'<td class="num">{thousands(row["events"])}</td>'
        f'<td class="num">{common.seconds_or_dash(row["avg_session_duration"])}</td>'
        f"<td>{top_cell}</td>"
        f'<td class="nowrap">{escape(str(day(first_seen)))}</td>'
        f'<td class="nowrap">{common.time_ago(row["last_seen"])}</td></tr>\n'
    )


@require_GET
@org_page(Role.MEMBER, replica=True)
def user_detail(request, external_id):
    org = request.org
    # A member may only open the profiles linked to their own account; anyone else's looks
    # like a missing one.
    if not request.user.has_role(Role.ANALYST) and not queries.end_user_is_own(org, external_id, request.user):
        raise Http404("Not found.")
    args, error = params_or_default(_end_user_page_params, request.GET)
    if "before" in request.GET and wants_fragment(request):
        # "Older events": only the next page of sessions, appended under the ones shown.
        page = error or _timeline_or_error(lambda: queries.end_user_timeline(org, external_id, **args))
        if isinstance(page, str):
            return render(request, "analytics/partials/timeline_error.html", {"error": page}, status=400)
        context = {"timeline": _timeline(page["timeline"]), "next_before": page["timeline_next"]}
        return render(request, "analytics/partials/timeline_sessions.html", context)
    detail = _timeline_or_error(lambda: queries.end_user_detail(org, external_id, **args))
    if isinstance(detail, str):
        error, detail = detail, queries.end_user_detail(org, external_id)
    context = {
        "active_nav": "users",
        "detail": detail,
        "timeline": _timeline(detail["timeline"]),
        "next_before": detail["timeline_next"],
        "timeline_page_size": TIMELINE_LIMIT,
        "older": args["before"] is not None and not error,
        "error": error,
    }
    return render(request, "analytics/user_detail.html", context, status=400 if error else 200)


def _end_user_page_params(query):
    """`params.end_user_params`, its refusal of `before` said as the page's: the API's names
    the answer's field `timeline_next`, which the page does not show."""
    try:
        return params.end_user_params(query)
    except DomainError as exc:
        if "before" in (exc.errors or {}):
            fail("before", 'Must be an event id: follow the "Older events" link under the timeline.')
        raise


def _timeline_or_error(read):
    """What `read()` returns, or the message of a refused `before` (a 404 stays a 404)."""
    try:
        return read()
    except NotFound:
        raise
    except DomainError as exc:
        return exc.detail


def _timeline(sessions):
    """The timeline's sessions as HTML, built here once: 200 events in up to 200 sessions
    through the template engine (a dozen values and conditions a session, five an event) cost
    ~20–40 ms a page, more than the query that fetched them. Escaped by the standard library,
    as `common._options` is. Times are UTC, like the days."""
    return mark_safe("".join(_session_item(s) for s in sessions))


def _session_item(session):
    """One session: when it started (and ended), its event count, its id (cut as
    `truncatechars:18` cuts it), whether it goes on from the page before, and
    its events."""
    start, end = session["start"].astimezone(UTC), session["end"].astimezone(UTC)
    count, session_id = session["event_count"], session["session_id"]
    notes = f"{count} event{'' if count == 1 else 's'}"
    if session_id:
        # Truncator (~40 µs, as truncatechars) only where it can change the id: an ASCII id
        # within the length is printed as it is.
        fits = session_id.isascii() and len(session_id) <= SESSION_ID_SHOWN
        shown = session_id if fits else Truncator(session_id).chars(SESSION_ID_SHOWN)
        notes += f' · session <span class="mono">{escape(shown)}</span>'
    if end != start:
        notes += f" · until {end:%H:%M}"
    continued = session["continued"]
    if continued:
        notes += " · continued"
    events = "".join(_event_line(e) for e in session["events"])
    return (
        f'<li class="session{" session-continued" if continued else ""}">'
        f'<div class="session-head"><strong>{start:%a} {start.day} {start:%b %Y, %H:%M}</strong>'
        f' <span class="muted small">{notes}</span></div>'
        f'<ul class="events">{events}</ul></li>\n'
    )


def _event_line(event):
    """One event of the timeline: its time (UTC), feature, event type unless the default
    "interaction", and session time when it has one."""
    timestamp = event["timestamp"]
    event_type = event["event_type"]
    badge = "" if event_type == "interaction" else f'<span class="badge">{escape(event_type)}</span>'
    duration = event["session_duration"]
    timed = "" if duration is None else f'<span class="muted">{duration:.0f} s</span>'
    return (
        f'<li><time datetime="{timestamp.isoformat()}">{timestamp.astimezone(UTC):%H:%M:%S}</time>'
        f"<span>{escape(event['feature_name'])}</span>{badge}{timed}</li>"
    )
