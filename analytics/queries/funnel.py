"""Ordered funnels counted per end user, in one bounded SQL statement."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from core.days import today
from core.db_routing import read_alias
from core.exceptions import QueryTimedOut
from telemetry.models import Feature
from telemetry.queries import feature_find
from tenants.models import Organization

from ..active_days import range_masks
from ..models import UserEventTypeActiveDays
from .cache import cached
from .common import bounds, db_datetime, percent, plus_days_sql
from .filters import people_sql

_EVENTS_OF_STEP = """SELECT e.end_user_id AS uid, e.timestamp AS ts FROM telemetry_usageevent e {}
    WHERE e.organization_id = %s AND e.end_user_id IS NOT NULL AND e.timestamp > %s AND e.timestamp < %s AND {}"""


def funnel_sql(
    org: Organization,
    *,
    steps: list[str],
    feature_ids: dict[str, int],
    window_days: int,
    start: date,
    end: date,
    filters: dict[str, Any] | None = None,
) -> tuple[str, list[Any]]:
    """The funnel statement for two steps or more (`params.funnel_params` asks for two):
    one row with the number of users reaching each step.

    One pass over each step's events, all hashed, nothing looped or sorted, whatever the
    statistics say (a never- or long-unANALYZEd table once made a CTE plan loop over one
    CTE inside another). Step 1 gives each user's entry time `t0`, grouped by user: a
    derived table unique on the user id, which the planner knows, so it is the side that
    is hashed. Each later step i is that table FULL JOINed with step i's events on the user
    id (a FULL JOIN is hashed or merged, never looped) and grouped by user again: `t<i>` is
    the user's first event of step i after `t<i-1>` and within `window_days` of `t0`, NULL
    when there is none; the events of users who did not enter fall into one NULL group that
    no count takes. A step naming a feature reads only the (organization, feature,
    timestamp) index, which carries `end_user` (an index-only scan on PostgreSQL); an event
    type step reads its events through the (organization, timestamp) index.

    The person `filters` narrow the users who enter (a subquery of end-user ids); later
    steps only follow those users. SQLite, which loops anyway, takes a LEFT JOIN: one
    (organization, end user, timestamp) index range per user and step."""
    lo, hi = bounds(start, end)
    horizon = hi + timedelta(days=window_days)
    window_sql, window_kind = plus_days_sql("p.t0")
    window_param = window_days if window_kind == "int" else f"+{window_days} days"
    if connection.vendor == "postgresql":
        join, events_index = "FULL JOIN", ""
    else:
        # SQLite loops over the previous step's users: each looks up its own events. Named,
        # as without statistics it would rather range over the step's feature once per user.
        join, events_index = "LEFT JOIN", "INDEXED BY event_org_user_ts_idx"

    def match(key: str) -> tuple[str, list[Any]]:
        if key in feature_ids:
            return "e.feature_id = %s", [feature_ids[key]]
        return "e.event_type = %s", [key]

    first_cond, first_params = match(steps[0])
    people = people_sql(org, filters or {})
    if people:
        first_cond += f" AND e.end_user_id IN ({people[0]})"
        first_params += people[1]
    sql = f"""SELECT e.end_user_id AS uid, MIN(e.timestamp) AS t0 FROM telemetry_usageevent e
        WHERE e.organization_id = %s AND e.end_user_id IS NOT NULL
          AND e.timestamp >= %s AND e.timestamp < %s AND {first_cond}
        GROUP BY e.end_user_id"""
    params: list[Any] = [org.pk, db_datetime(lo), db_datetime(hi), *first_params]
    for i, key in enumerate(steps[1:], start=1):
        cond, cond_params = match(key)
        carried = ", ".join(f"MIN(p.t{k}) AS t{k}" for k in range(i))
        sql = f"""SELECT p.uid, {carried},
            MIN(e.ts) FILTER (WHERE e.ts > p.t{i - 1} AND e.ts <= {window_sql}) AS t{i}
        FROM ({sql}) p {join} ({_EVENTS_OF_STEP.format(events_index, cond)}) e ON e.uid = p.uid
        GROUP BY p.uid"""
        params = [window_param, *params, org.pk, db_datetime(lo), db_datetime(horizon), *cond_params]
    counts_sql = ", ".join(f"COUNT(f.t{i})" for i in range(len(steps)))
    return f"SELECT {counts_sql} FROM ({sql}) f", params


@contextmanager
def _bounded(db: BaseDatabaseWrapper) -> Iterator[None]:
    """Stop the funnel statement after `DB_STATEMENT_TIMEOUT_MS` on SQLite too, which has
    no statement timeout: its progress handler interrupts the statement (PostgreSQL's web
    connections carry `statement_timeout` already). Either way the request answers 503
    with Retry-After (`core.exceptions.database_failure`), never hangs. No query is added.
    In web processes only, as on PostgreSQL: commands and Celery workers have no limit (an
    alert rule's funnel, judged by the worker, is not a request to answer quickly)."""
    limit_ms = settings.DB_STATEMENT_TIMEOUT_MS
    if db.vendor != "sqlite" or not limit_ms or not settings.WEB_PROCESS:
        yield
        return
    db.ensure_connection()
    raw = db.connection
    deadline = time.monotonic() + limit_ms / 1000
    raw.set_progress_handler(lambda: int(time.monotonic() > deadline), 1_000)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc):
            raise QueryTimedOut from exc
        raise
    finally:
        raw.set_progress_handler(None, 0)


@cached
def funnel(
    org: Organization,
    *,
    steps: list[str],
    window_days: int = 7,
    start: date,
    end: date,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Ordered funnel counted per end user: a user enters at their first event of step 1 in
    start..end; each later step counts when that user has a matching event after the previous
    step and within `window_days` of entering. A step naming a feature key of `org` matches
    that feature's events, any other step the events of that event type.

    Funnels read raw events (exact times matter), through `funnel_sql`'s linear plan and
    never longer than `DB_STATEMENT_TIMEOUT_MS` in a web process (then a 503)."""
    feature_ids = dict(Feature.objects.filter(organization=org, key__in=steps).values_list("key", "id"))
    sql, params = funnel_sql(
        org, steps=steps, feature_ids=feature_ids, window_days=window_days, start=start, end=end, filters=filters
    )
    # Raw SQL asks no router: the read scope's database (the replica in a page or API read).
    db = connections[read_alias()]
    with _bounded(db), db.cursor() as cursor:
        cursor.execute(sql, params)
        counts = list(cursor.fetchone())
    result: list[dict[str, Any]] = []
    for i, (key, users) in enumerate(zip(steps, counts, strict=True)):
        prev = counts[i - 1] if i else users
        result.append(
            {
                "step": i + 1,
                "key": key,
                "kind": "feature" if key in feature_ids else "event_type",
                "users": users,
                # Nobody entered (or reached the step before): a conversion of nobody is
                # undefined, null, not 0 % (README: a figure with nothing behind it is null).
                "conversion_from_prev": percent(users, prev) if prev else None,
                "conversion_from_start": percent(users, counts[0]) if counts[0] else None,
            }
        )
    return {"window_days": window_days, "start": start, "end": end, "steps": result}


def funnel_steps_resolve(org: Organization, steps: list[str]) -> tuple[list[str], list[str]]:
    """(the steps as the funnel matches them, the steps that name nothing). A step is a
    feature key of `org`, else an event type some end user of `org` has sent, else a feature's
    id or name as the other endpoints take them (then its key), else nothing: a misspelt step
    would count nobody, silently. Up to one query per step besides two."""
    keys = set(Feature.objects.filter(organization=org, key__in=steps).values_list("key", flat=True))
    types = event_types_known(org, [step for step in steps if step not in keys])
    resolved: list[str] = []
    unknown: list[str] = []
    for step in steps:
        if step in keys or step in types:
            resolved.append(step)
            continue
        found = feature_find(org, step)
        if found is None:
            unknown.append(step)
        else:
            resolved.append(found.key)
    return resolved, unknown


def event_types_known(org: Organization, event_types: list[str]) -> set[str]:
    """Which of `event_types` some end user of `org` ever sent, from the per-event-type
    bitmask rows: one probe per type over the blocks from the organisation's first to today's
    (each an index range of the unique key, which leads with the block)."""
    rows = UserEventTypeActiveDays.objects.filter(organization=org)
    first = rows.order_by("block_start").values_list("block_start", flat=True).first() if event_types else None
    if first is None:
        return set()
    blocks = list(range_masks(first, max(first, today())))
    return {
        event_type for event_type in event_types if rows.filter(block_start__in=blocks, event_type=event_type).exists()
    }


def event_types_seen(org: Organization, event_types: list[str], start: date, end: date) -> set[str]:
    """Which of `event_types` some end user of `org` sent within start..end, from the
    per-event-type bitmask rows of the range's blocks (one index probe a type): a funnel step
    counting nobody either matched nothing, or matched events no one reached in order."""
    rows = UserEventTypeActiveDays.objects.filter(organization=org, block_start__in=list(range_masks(start, end)))
    return {event_type for event_type in event_types if rows.filter(event_type=event_type).exists()}
