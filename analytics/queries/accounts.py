"""Accounts (the tenant's customer companies): the list with each account's recent usage and
trend, and one account's profile, people, feature adoption and weekly series. The list's
events, last activity and features used come from the account rollups (DailyAccountUsage
and its per-block feature bitmasks, AccountFeatureActiveDays: each user's account as their
days were rolled up), its active users from the active-day bitmasks through
`EndUser.account` now; one account's page the same way (its events, weekly events and last
activity from the account rollup, as the list and the summary's account filter count them;
and so do the features it adopted and their events; its people, each feature's users and
its weekly active users through `EndUser.account` now).

Two 4-week windows end on `end` (default today): the recent one (`end`-27 … `end`) gives the
figures, and the 4 weeks before it the comparison. `trend_pct` is the change in events between
them (null when the earlier window has none); an account is *at risk* when its events fell by
`AT_RISK_DROP_PCT` % or more."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Q, Sum

from core.days import today
from core.exceptions import NotFound
from telemetry.models import Account, EndUser, Feature
from tenants.models import Organization

from ..active_days import range_masks
from ..models import (
    AccountFeatureActiveDays,
    DailyAccountUsage,
    DailyUserUsage,
    UserActiveDays,
)
from . import active
from .cache import cached

WINDOW_DAYS = 28
# The account filter's picker lists this many accounts (by name); any other is still
# reachable by its id in the URL.
ACCOUNT_CHOICES_LIMIT = 300
AT_RISK_DROP_PCT = 30.0
SERIES_WEEKS = 8


def account_choices(org: Organization, selected: str = "") -> list[tuple[str, str]]:
    """`[(account_id, name)]` for the account filter's picker: the first
    ACCOUNT_CHOICES_LIMIT accounts of `org` by name (the id when it has none), and the
    `selected` external id among them even past that."""
    accounts = Account.objects.filter(organization=org).order_by("name", "external_id")
    if selected:
        accounts = accounts.filter(Q(pk__in=accounts.values("pk")[:ACCOUNT_CHOICES_LIMIT]) | Q(external_id=selected))
    else:
        accounts = accounts[:ACCOUNT_CHOICES_LIMIT]
    return [(account_id, name or account_id) for account_id, name in accounts.values_list("external_id", "name")]


def trend_pct(recent: int, previous: int) -> float | None:
    """% change from `previous` to `recent`, one decimal; None when there was nothing before."""
    if not previous:
        return None
    return round((recent - previous) * 100.0 / previous, 1)


def is_at_risk(recent: int, previous: int) -> bool:
    """Usage down by AT_RISK_DROP_PCT % or more (exactly 30 % counts) against the 4 weeks before."""
    return previous > 0 and (previous - recent) * 100 >= AT_RISK_DROP_PCT * previous


def _windows(end: date) -> tuple[date, date]:
    """(first day of the recent window, first day of the previous one)."""
    recent_start = end - timedelta(days=WINDOW_DAYS - 1)
    return recent_start, recent_start - timedelta(days=WINDOW_DAYS)


def _row(account: Account, usage: dict[str, Any] | None, features_used: int) -> dict[str, Any]:
    recent = (usage or {}).get("recent") or 0
    previous = (usage or {}).get("previous") or 0
    return {
        "account_id": account.external_id,
        "name": account.name or account.external_id,
        "active_users": (usage or {}).get("active_users") or 0,
        "events": recent,
        "previous_events": previous,
        "features_used": features_used,
        "trend_pct": trend_pct(recent, previous),
        "at_risk": is_at_risk(recent, previous),
        "last_seen": (usage or {}).get("last_seen"),
    }


def _active_users(org: Organization, start: date, end: date) -> dict[int, int]:
    """{account pk: its end users active within start..end}, through each end user's account
    now, from their active-day bitmasks (one row per user and block: a 4-week window touches
    one or two blocks). The organisation's end users with an account, each kept by an EXISTS
    on its bitmask rows, counted per account: the planner hashes the window's rows once (a
    semi-join) and no COUNT(DISTINCT) sorts them (28 against 50 ms on the 10 M-event bench)."""
    days = active.active_within(UserActiveDays.objects.filter(organization=org, end_user=OuterRef("pk")), start, end)
    people = EndUser.objects.filter(organization=org, account__isnull=False).filter(Exists(days))
    return dict(people.values("account_id").annotate(n=Count("pk")).order_by().values_list("account_id", "n"))


def _features_used(
    org: Organization, start: date, end: date, feature: Feature | None
) -> tuple[Counter[int], set[int] | None]:
    """Per account, the features its users used within start..end (a Counter), and the
    accounts that used `feature` (None without one), from the per-account feature bitmasks:
    a row per account, feature and block, where the account rows hold one per day."""
    rows = active.active_within(AccountFeatureActiveDays.objects.filter(organization=org), start, end)
    pairs = set(rows.values_list("account_id", "feature_id"))
    using = None if feature is None else {account_id for account_id, feature_id in pairs if feature_id == feature.pk}
    return Counter(account_id for account_id, _ in pairs), using


def _sort_key(sort: str) -> Callable[[dict[str, Any]], Any]:
    field = sort.lstrip("-")
    if field in ("name", "account_id"):
        return lambda r: r[field].lower()
    return lambda r: r[field] if r[field] is not None else 0


@cached
def account_list(
    org: Organization,
    *,
    end: date | None = None,
    search: str = "",
    at_risk: bool | None = None,
    feature: Feature | None = None,
    sort: str = "-events",
    page: int = 1,
    page_size: int | None = 50,
) -> dict[str, Any]:
    """Every account of `org` with its recent figures, sorted and cut to one page (four
    queries whatever the number of accounts, five with `feature`: the accounts, their events
    and last events, their active users, their features, and that feature's events, each
    row's `feature_events`). Sorting happens here, over every account of
    the organisation: an
    organisation has thousands of customer companies at most, not millions.
    `search` matches the external id or name; `at_risk` keeps only (or drops) the accounts at
    risk; `feature` keeps the accounts whose users used that feature in the recent window.
    Returns `{count, page, page_size, end, results}`."""
    end = end or today()
    recent_start, previous_start = _windows(end)
    accounts = Account.objects.filter(organization=org)
    if search:
        accounts = accounts.filter(Q(external_id__icontains=search) | Q(name__icontains=search))
    in_recent = Q(date__gte=recent_start)
    usage = {
        r["account_id"]: r
        for r in DailyAccountUsage.objects.filter(
            organization=org, feature__isnull=True, account__isnull=False, date__gte=previous_start, date__lte=end
        )
        .values("account_id")
        .annotate(
            recent=Sum("event_count", filter=in_recent),
            previous=Sum("event_count", filter=~in_recent),
            last_seen=Max("last_event_at"),
        )
    }
    for account_id, users in _active_users(org, recent_start, end).items():
        usage.setdefault(account_id, {})["active_users"] = users
    features_used, using = _features_used(org, recent_start, end, feature)
    # Under `feature`, each account's events of it: "accounts using Search" with only their
    # totals read as their use of Search.
    feature_events = (
        dict(
            DailyAccountUsage.objects.filter(
                organization=org, feature=feature, account__isnull=False, date__gte=recent_start, date__lte=end
            )
            .values("account_id")
            .annotate(n=Sum("event_count"))
            .values_list("account_id", "n")
        )
        if feature is not None
        else None
    )
    rows = []
    for account in accounts:
        if using is not None and account.pk not in using:
            continue
        row = _row(account, usage.get(account.pk), features_used.get(account.pk, 0))
        row["feature_events"] = None if feature_events is None else feature_events.get(account.pk, 0)
        if at_risk is not None and row["at_risk"] != at_risk:
            continue
        rows.append(row)
    # Ties keep the account id order in either direction (Python's sort is stable, reversed too).
    rows.sort(key=lambda r: r["account_id"])
    rows.sort(key=_sort_key(sort), reverse=sort.startswith("-"))
    # Either way, the accounts without a trend (nothing in the earlier window) come last.
    rows.sort(key=lambda r: r["trend_pct"] is None and sort.lstrip("-") == "trend_pct")
    count = len(rows)
    if page_size is not None:
        rows = rows[(page - 1) * page_size : page * page_size]
    return {"count": count, "page": page, "page_size": page_size, "end": end, "results": rows}


@cached
def account_detail(org: Organization, external_id: str, *, end: date | None = None) -> dict[str, Any]:
    """One account of `org` (another organisation's or an unknown id is NotFound): its
    profile, the list-row figures, its people (recent window, most events first), the
    features it adopted in the recent window and those it did not, and events and active
    users per week for the last SERIES_WEEKS weeks (7-day buckets ending on `end`)."""
    end = end or today()
    account = Account.objects.filter(organization=org, external_id=external_id).first()
    if account is None:
        raise NotFound("Account not found.")
    recent_start, previous_start = _windows(end)
    series_start = end - timedelta(days=7 * SERIES_WEEKS - 1)
    first = min(previous_start, series_start)
    # Events from the account rollup (as the list counts them: a handful of rows), people from
    # the per-user rows of the recent window summed per user in the database, weekly users
    # from the active-day bitmasks: nothing here grows with the account's user-days.
    recent = previous = 0
    week_events = [0] * SERIES_WEEKS
    last_events: list[datetime] = []
    for day, events, last_event in DailyAccountUsage.objects.filter(
        organization=org, account=account, feature__isnull=True, date__gte=first, date__lte=end
    ).values_list("date", "event_count", "last_event_at"):
        if day >= series_start:
            week_events[(day - series_start).days // 7] += events
        if day >= previous_start and last_event is not None:
            last_events.append(last_event)
        if day >= recent_start:
            recent += events
        elif day >= previous_start:
            previous += events
    people = {
        user_pk: {"user_id": user_id, "email": email, "events": events, "last_seen": last_event}
        for user_pk, user_id, email, events, last_event in DailyUserUsage.objects.filter(
            organization=org, end_user__account=account, date__gte=recent_start, date__lte=end
        )
        .values_list("end_user_id", "end_user__external_id", "end_user__email")
        .annotate(events=Sum("event_count"), last=Max("last_event_at"))
        .order_by()
    }
    weeks = [series_start + timedelta(days=7 * i) for i in range(SERIES_WEEKS)]
    week_users = (
        active.active_rows(org, {"account": account.pk})
        .filter(block_start__in=list(range_masks(series_start, end)))
        .alias(**{f"hit{i}": active.hits(week, week + timedelta(days=6)) for i, week in enumerate(weeks)})
        .aggregate(
            **{
                f"w{i}": Count("end_user_id", distinct=True, filter=Q(**{f"hit{i}__gt": 0}))
                for i in range(SERIES_WEEKS)
            }
        )
    )
    adopted = list(
        DailyAccountUsage.objects.filter(
            organization=org, account=account, feature__isnull=False, date__gte=recent_start, date__lte=end
        )
        .values("feature_id", "feature__key", "feature__name")
        .annotate(events=Sum("event_count"))
        .order_by("-events", "feature__key")
    )
    feature_users = active.feature_users(org, recent_start, end, {"account": account.pk})
    adopted_ids = {r["feature_id"] for r in adopted}
    not_adopted = [
        {"feature_id": f.pk, "feature_key": f.key, "feature_name": f.name}
        for f in Feature.objects.filter(organization=org).order_by("key")
        if f.pk not in adopted_ids
    ]
    usage: dict[str, Any] = {
        "recent": recent,
        "previous": previous,
        "active_users": len(people),
        "last_seen": max(last_events, default=None),
    }
    return {
        **_row(account, usage, len(adopted)),
        "properties": account.properties,
        "created_at": account.created_at,
        "start": recent_start,
        "end": end,
        "users": sorted(people.values(), key=lambda p: (-p["events"], p["user_id"])),
        "features_adopted": [
            {
                "feature_id": r["feature_id"],
                "feature_key": r["feature__key"],
                "feature_name": r["feature__name"],
                "events": r["events"],
                "users": feature_users.get(r["feature_id"], 0),
            }
            for r in adopted
        ],
        "features_not_adopted": not_adopted,
        "weekly": [
            {
                "week_start": week,
                "events": week_events[i],
                "active_users": week_users[f"w{i}"] or 0,
            }
            for i, week in enumerate(weeks)
        ],
    }
