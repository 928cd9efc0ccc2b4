"""The end users with most events over a range, exact, without summing every active user's
days: a threshold algorithm over the weekly totals kept beside the active-day bitmasks.

A user's `UserActiveDays.events_w<k>` is their events in week k of the block, so the sum
over the weeks the range touches (in the blocks where they were active within the range)
is an upper bound of their events in the range, exact for the whole weeks: only the two
edge weeks can add days outside it. Users are taken in
the order of their bounds, their exact figures summed from their own per-user daily rows
(one index range each), until the last row wanted has more events than the next user's
bound could give: nobody after can rank. A range inside one or two blocks reads one
bitmask row per active user and the daily rows of a few dozen to a few hundred users,
instead of one row per active user and day.

Only without a feature filter: the weekly totals are all features together (a feature's
ranking keeps reading the per-user feature rows)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.db.models import Case, F, IntegerField, Max, Min, Q, Sum, Value, When

from tenants.models import Organization

from ..active_days import BLOCK_WEEKS, WEEK_FIELDS, range_masks
from ..models import DailyUserUsage
from . import active

# Users whose exact figures are summed per query: a first batch of twice the rows wanted,
# then growing, so a loose bound costs a few queries, never one per user.
FIRST_BATCH_MIN = 40


def answers(filters: Mapping[str, Any]) -> bool:
    """Whether the weekly totals rank users under `filters` (any filter but a feature)."""
    return active.answers(filters)


def _weeks_bound(start: date, end: date) -> Case:
    """An expression: a bitmask row's events over the weeks of its block that start..end
    touches."""
    whens = []
    for block, mask in range_masks(start, end).items():
        weeks = [F(WEEK_FIELDS[k]) for k in range(BLOCK_WEEKS) if mask >> (7 * k) & 127]
        total = weeks[0]
        for week in weeks[1:]:
            total = total + week
        whens.append(When(block_start=block, then=total))
    return Case(*whens, default=Value(0), output_field=IntegerField())


def user_bounds(
    org: Organization, *, start: date, end: date, filters: Mapping[str, Any], people: Q | None = None
) -> list[tuple[int, int]]:
    """[(end user id, upper bound of their events in start..end)] of every user active in
    the range whom the person filters and `people` (a condition on `end_user__`) keep, the
    highest bound first (ties by id): one grouped read of the bitmask rows."""
    rows = active.active_within(active.active_rows(org, filters), start, end)
    if people:
        rows = rows.filter(people)
    grouped = rows.values("end_user_id").annotate(bound=Sum(_weeks_bound(start, end))).order_by("-bound", "end_user_id")
    return list(grouped.values_list("end_user_id", "bound"))


def _exact(org: Organization, ids: list[int], start: date, end: date) -> list[dict[str, Any]]:
    """Each of `ids`' figures in start..end from their per-user daily rows."""
    return list(
        DailyUserUsage.objects.filter(organization=org, end_user_id__in=ids, date__gte=start, date__lte=end)
        .values("end_user_id")
        .annotate(
            events=Sum("event_count"),
            duration=Sum("total_session_duration"),
            timed=Sum("timed_events"),
            first_event=Min("first_event_at"),
            last_event=Max("last_event_at"),
        )
        .order_by()
    )


def top_rows(
    org: Organization, *, bounds: list[tuple[int, int]], start: date, end: date, limit: int
) -> list[dict[str, Any]]:
    """The first `limit` users by events in start..end (most first, ties by id), among
    `bounds` (`user_bounds`), with their events, session time (`duration`, `timed`) and
    first and last event: exactly the rows a grouped sum over every user would rank first."""
    found: list[dict[str, Any]] = []
    taken = 0
    batch = max(2 * limit, FIRST_BATCH_MIN)
    while taken < len(bounds):
        ids = [uid for uid, _ in bounds[taken : taken + batch]]
        taken += len(ids)
        found.extend(_exact(org, ids, start, end))
        found.sort(key=lambda r: (-r["events"], r["end_user_id"]))
        del found[limit:]
        # A later user can rank only with a bound at or above the last kept row's events
        # (equal: a tie won by a lower id), and the bounds only fall from here on.
        if len(found) == limit and (taken == len(bounds) or bounds[taken][1] < found[-1]["events"]):
            break
        batch *= 2
    return found
