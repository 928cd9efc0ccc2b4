"""The end users with most events over a range, exact, without summing every active user's
days: a threshold algorithm over the weekly totals kept beside the active-day bitmasks.

A user's `UserActiveDays.events_w<k>` is their events in week k of the block, so the sum
over the weeks the range touches is an upper bound of their events in the range, exact but
for the days of the two edge weeks outside it. Users are taken in the order of their bounds,
their exact events found by subtracting their events on those edge days (at most six days
each side: one short index range per user), until the last user wanted has more events
than the next user's bound could give: nobody after can rank. Only the winners' full
figures are then summed over the range. A ranking reads one bitmask row per active user
and block, and the edge days of a few hundred users, instead of one row per active user
and day.

Only without a feature filter: the weekly totals are all features together (a feature's
ranking keeps reading the per-user feature rows)."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import date, timedelta
from functools import reduce
from typing import Any

from django.db import connections, transaction
from django.db.models import Case, F, IntegerField, Max, Min, Q, Sum, Value, When

from tenants.models import Organization

from ..active_days import BLOCK_WEEKS, WEEK_FIELDS, range_masks
from ..models import DailyUserUsage
from ..planner import plans_without
from . import active
from .common import feature_pk, ids_in_sql, week_monday

# Users whose events outside the range are read per query: a first batch of several times
# the rows wanted, then growing, so a loose bound costs a few queries, never one per user.
FIRST_BATCH_MIN = 200
# The bounds read at first (`Bounds`): a page of the user list or the top users nearly always
# ends within them (the first four batches of edge days take 3,000 users).
LEADING_BOUNDS = 4_000


def answers(filters: Mapping[str, Any]) -> bool:
    """Whether the weekly totals rank users under `filters` (any filter but a feature: the
    per-feature bitmasks carry no events)."""
    return feature_pk(filters.get("feature")) is None


def _weeks_bound(start: date, end: date) -> Case:
    """An expression: a bitmask row's events over the weeks of its block that start..end
    touches."""
    whens = []
    for block, mask in range_masks(start, end).items():
        weeks = [F(WEEK_FIELDS[k]) for k in range(BLOCK_WEEKS) if mask >> (7 * k) & 127]
        whens.append(When(block_start=block, then=reduce(operator.add, weeks)))
    return Case(*whens, default=Value(0), output_field=IntegerField())


def edge_days(start: date, end: date) -> tuple[tuple[date, date] | None, tuple[date, date] | None]:
    """The days of start's week before `start` and of end's week after `end` (None: none):
    what a bound over the touched weeks has beyond the range."""
    before = week_monday(start), start - timedelta(days=1)
    after = end + timedelta(days=1), week_monday(end) + timedelta(days=6)
    return (before if before[0] <= before[1] else None), (after if after[0] <= after[1] else None)


class Bounds:
    """The users active in a range whom the filters keep, by their bound (their events over
    the weeks the range touches), the highest first (ties by id): `count` of them, and the
    leading ones read as far as a ranking asks (`upto`).

    The database groups the bitmask rows, counts the groups and sorts and cuts them: the
    first read returns `LEADING_BOUNDS` rows with the count, not one row per active user
    (the 20,000 of a 30-day range cost ~30 ms to fetch and convert, more than the grouping's
    sort). A ranking that needs more reads again, twice as far each time."""

    def __init__(self, db: str, sql: str, params: list[Any], *, nested_loops: bool) -> None:
        self._db, self._sql, self._params, self._nested_loops = db, sql, params, nested_loops
        self._rows: list[tuple[int, int]] = []
        self.count = 0
        self._read(LEADING_BOUNDS)

    def _read(self, limit: int) -> None:
        sql = f"""SELECT end_user_id, bound, COUNT(*) OVER () FROM ({self._sql}) grouped
            ORDER BY bound DESC, end_user_id LIMIT %s"""
        db = connections[self._db]
        switches = () if self._nested_loops or db.vendor != "postgresql" else ("enable_nestloop",)
        # SET LOCAL needs a transaction (a savepoint inside the request's own, if any), and
        # `plans_without` puts the setting back after the statement. Only then: on SQLite
        # `atomic` would take the write lock (IMMEDIATE transactions).
        scope = transaction.atomic(using=self._db) if switches else nullcontext()
        with scope, db.cursor() as cursor, plans_without(cursor, *switches):
            cursor.execute(sql, [*self._params, limit])
            rows = cursor.fetchall()
        self._rows = [(int(uid), int(bound)) for uid, bound, _ in rows]
        self.count = int(rows[0][2]) if rows else 0

    def upto(self, n: int) -> list[tuple[int, int]]:
        """The first `n` (all of them when there are fewer)."""
        if n > len(self._rows) and len(self._rows) < self.count:
            self._read(max(n, 2 * len(self._rows)))
        return self._rows[:n]


def user_bounds(
    org: Organization,
    *,
    start: date,
    end: date,
    filters: Mapping[str, Any],
    people: Q | None = None,
    text_search: bool = False,
) -> Bounds:
    """The `Bounds` of every user active in start..end whom the person filters and `people`
    (a condition on `end_user__`) keep: one grouped read of the bitmask rows. Every row of
    the touched blocks counts, active in the range or not, so the bound minus the events of
    `edge_days` is exactly the user's events in the range. `text_search`: `people` holds a
    text search of the profiles."""
    rows = active.active_rows(org, filters).filter(block_start__in=list(range_masks(start, end)))
    if people:
        rows = rows.filter(people)
    grouped = (
        rows.values("end_user_id")
        .annotate(bound=Sum(_weeks_bound(start, end)), hit=Max(active.hits(start, end)))
        .filter(hit__gt=0)
        .order_by()
        .values_list("end_user_id", "bound")
    )
    sql, params = grouped.query.sql_with_params()
    # A text search on the profiles is estimated to keep a handful of users, and the planner
    # then looks up each kept user's bitmask rows one by one: 11,000 lookups (115 ms) for a
    # search matching half of 20,000 users, where a hash (or merge) join with the range's
    # rows takes half of that whatever the search keeps. A member's own profiles are a few:
    # looked up one by one, as planned.
    return Bounds(grouped.db, sql, list(params), nested_loops=not text_search)


def _outside(org: Organization, ids: list[int], start: date, end: date) -> dict[int, int]:
    """{user id: events on `edge_days` of start..end} of `ids` with any there. Raw, with
    the ids as one parameter (`ids_in_sql`): the batches run to thousands of users."""
    ranges = [edge for edge in edge_days(start, end) if edge is not None]
    days = " OR ".join("date BETWEEN %s AND %s" for _ in ranges)
    db = connections[DailyUserUsage.objects.db]
    member, member_params = ids_in_sql("end_user_id", ids, db.vendor)
    sql = f"""SELECT end_user_id, SUM(event_count) FROM {DailyUserUsage._meta.db_table}
        WHERE organization_id = %s AND {member} AND ({days}) GROUP BY end_user_id"""
    params = [org.pk, *member_params, *(db.ops.adapt_datefield_value(day) for edge in ranges for day in edge)]
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return {int(uid): int(events) for uid, events in cursor.fetchall()}


def _figures(org: Organization, ids: list[int], start: date, end: date) -> list[dict[str, Any]]:
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
    org: Organization, *, bounds: Bounds, start: date, end: date, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """The users ranked `offset` + 1 … `limit` by events in start..end (most first, ties by
    id), among `bounds` (`user_bounds`), with their events, session time (`duration`,
    `timed`) and first and last event: exactly the rows a grouped sum over every user would
    rank there. Only those rows' figures are summed (a page, not the pages before it).

    A user's exact events are their bound minus their events on the edge days; a range of
    whole weeks has none, and its bounds are the ranking itself."""
    if edge_days(start, end) == (None, None):
        ranking = [(-bound, uid) for uid, bound in bounds.upto(limit)]
    else:
        ranking = []
        taken = 0
        batch = max(4 * limit, FIRST_BATCH_MIN)
        # A re-read of the bounds may see a rollup committed since the first: users moved
        # up or down, more of them or fewer. Each user is taken once, and the walk stops when
        # none is left, never indexing past the last.
        seen: set[int] = set()
        while fetched := bounds.upto(taken + batch)[taken:]:
            taken += len(fetched)
            chunk = [(uid, bound) for uid, bound in fetched if uid not in seen]
            seen.update(uid for uid, _ in chunk)
            outside = _outside(org, [uid for uid, _ in chunk], start, end) if chunk else {}
            ranking.extend((outside.get(uid, 0) - bound, uid) for uid, bound in chunk)
            ranking.sort()
            del ranking[limit:]
            # A later user can rank only with a bound at or above the last kept user's
            # events (equal: a tie won by a lower id), and the bounds only fall from here.
            following = bounds.upto(taken + 1)[taken:]
            if len(ranking) == limit and (not following or following[0][1] < -ranking[-1][0]):
                break
            batch *= 2
    ranking = ranking[offset:]
    if not ranking:
        return []
    figures = {r["end_user_id"]: r for r in _figures(org, [uid for _, uid in ranking], start, end)}
    return [figures[uid] for _, uid in ranking]
