"""Accounts (the tenant's customer companies): the searchable, sortable, paged table with
each account's trend and at-risk flag, and one account's page (people, features adopted and
not, weekly usage)."""

from html import escape
from urllib.parse import urlencode

from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from core.days import today
from core.pages import org_page, page_fetched, params_leaving_out, params_or_default, render_page
from tenants.models import Role

from .. import exports, params, queries
from ..templatetags.numbers import thousands
from . import common

ACCOUNTS_PAGE_SIZE = 25
# Accounts table columns: (sort key, title, numeric)
ACCOUNT_COLUMNS = (
    ("name", "Account", False),
    ("active_users", "Active users", True),
    ("events", "Events", True),
    ("features_used", "Features used", True),
    ("trend_pct", "Trend", True),
)


@require_GET
@org_page(Role.ANALYST, replica=True)
def accounts(request):
    org = request.org
    query = request.GET.copy()
    query.setdefault("page_size", str(ACCOUNTS_PAGE_SIZE))
    args, error, query = params_leaving_out(
        lambda q: params.account_list_params(org, q), query, {"page_size": ACCOUNTS_PAGE_SIZE}
    )

    if common.wants_csv(request):
        if error:
            return common.csv_refused(error)
        # Every account of the view (its search, risk and feature), in its order, not one page.
        every = queries.account_list(org, **{**args, "page": 1, "page_size": None})
        return common.csv_download(every["results"], "accounts", exports.ACCOUNT_LIST_COLUMNS)

    def fetch(number):
        result = queries.account_list(org, **{**args, "page": number})
        return result["results"], result["count"]

    page = page_fetched(fetch, number=args["page"], per_page=args["page_size"])
    given = {
        "search": args["search"],
        "at_risk": query.get("at_risk", ""),
        "feature": query.get("feature", ""),
    }
    rows = [{**row, "trend": common.change_class(row["trend_pct"])} for row in page.object_list]
    # What the sort and page links start with: the filters given, if any, then "&".
    filters_prefix = "".join(f"{urlencode({k: v})}&" for k, v in given.items() if v)
    context = {
        "active_nav": "accounts",
        "rows": rows,
        "page_obj": page,
        "search": args["search"],
        "at_risk": args["at_risk"],
        "feature": args["feature"],
        "sort": args["sort"],
        "columns": common.sort_columns(
            ACCOUNT_COLUMNS, args["sort"], descending_first=[key for key, _, numeric in ACCOUNT_COLUMNS if numeric]
        ),
        "filters_prefix": filters_prefix,
        "page_query": f"{filters_prefix}sort={args['sort']}",
        "error": error,
        **common.first_event_context(request),
    }
    return render_page(
        request,
        page="analytics/accounts.html",
        fragment="analytics/partials/accounts_table.html",
        context=context,
        status=400 if error else 200,
    )


PEOPLE_SHOWN = 50
FEATURES_SHOWN = 20
NOT_ADOPTED_SHOWN = 30


@require_GET
@org_page(Role.ANALYST, replica=True)
def account_detail(request, account_id):
    org = request.org
    args, error = params_or_default(params.account_detail_params, request.GET)
    detail = queries.account_detail(org, account_id, **args)
    weekly = detail["weekly"]
    context = {
        "active_nav": "accounts",
        "detail": detail,
        # The busiest people only: a large account has thousands, and rendering every row
        # cost the page ~0.3 s on each request; the Users page lists them all, filtered.
        "people_html": mark_safe("".join(_person_row(u) for u in detail["users"][:PEOPLE_SHOWN])),
        "people_more": max(len(detail["users"]) - PEOPLE_SHOWN, 0),
        # Likewise the most used features: the Features page lists all of them for the account.
        "adopted_html": mark_safe("".join(_adopted_row(f) for f in detail["features_adopted"][:FEATURES_SHOWN])),
        "adopted_more": max(len(detail["features_adopted"]) - FEATURES_SHOWN, 0),
        "trend": common.change_class(detail["trend_pct"]),
        "features_total": detail["features_used"] + len(detail["features_not_adopted"]),
        "weekly_chart": {
            "type": "bar",
            "labels": [w["week_start"].isoformat() for w in weekly],
            "series": [
                {"label": "Events", "data": [w["events"] for w in weekly]},
                # Tens of users beside thousands of events: on an axis of their own.
                {"label": "Active users (right axis)", "data": [w["active_users"] for w in weekly], "axis": "right"},
            ],
            # The last 7-day window ends on `end`: today's, when the page shows up to today.
            "partial_from": len(weekly) - 1 if weekly and detail["end"] >= today() else None,
            "partial_label": "so far",
        },
        "not_adopted": detail["features_not_adopted"][:NOT_ADOPTED_SHOWN],
        "not_adopted_more": max(len(detail["features_not_adopted"]) - NOT_ADOPTED_SHOWN, 0),
        "error": error,
    }
    return render(request, "analytics/account_detail.html", context, status=400 if error else 200)


def _person_row(person):
    """One row of an account's people, built here as the users table's is (50 rows with a
    link and a relative time each cost ~4 ms of the page through the template engine)."""
    email = person["email"]
    email_line = f'<div class="muted small">{escape(email)}</div>' if email else ""
    return (
        f"<tr><td>{common.user_link(person['user_id'])}{email_line}</td>"
        f'<td class="num">{thousands(person["events"])}</td>'
        f'<td class="nowrap">{common.time_ago(person["last_seen"])}</td></tr>\n'
    )


def _adopted_row(feature):
    """One row of an account's features adopted."""
    return (
        f"<tr><td>{common.feature_link(feature['feature_id'], feature['feature_name'])}</td>"
        f'<td class="num">{thousands(feature["events"])}</td><td class="num">{thousands(feature["users"])}</td></tr>\n'
    )
