"""Ordered funnels counted per end user, in one bounded SQL statement."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sized
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from core.db_routing import read_alias
from core.exceptions import QUERY_TIMEOUT_DETAIL, QUERY_TIMEOUT_RETRY_AFTER, StorageUnavailable
from telemetry.models import Feature
from tenants.models import Organization

from .cache import cached
from .common import bounds, db_datetime, percent, plus_days_sql
from .filters import people_sql


def _placeholders(values: Sized) -> str:
    return ", ".join(["%s"] * len(values))


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

    Its cost is linear in the candidate events whatever the planner believes (a never- or
    long-unANALYZEd table once made a plan like this loop over one CTE inside another):
    step 1's entries are read once from the (organization, feature, timestamp) ranges; the
    later steps' candidate events once more into `ev`; each later step is then one join of
    the previous step's users (one row per user) with that step's events on the user id. On
    PostgreSQL every CTE is MATERIALIZED (computed once) and those joins are FULL JOINs,
    which are hashed or merged, never looped, whatever the statistics say.

    The person `filters` narrow the users who enter (a subquery of end-user ids); later
    steps only follow those users."""
    lo, hi = bounds(start, end)
    horizon = hi + timedelta(days=window_days)
    window_sql, window_kind = plus_days_sql("p.t0")
    window_param = window_days if window_kind == "int" else f"+{window_days} days"
    materialized = "MATERIALIZED " if connection.vendor == "postgresql" else ""

    def match(key: str, prefix: str) -> tuple[str, list[Any]]:
        if key in feature_ids:
            return f"{prefix}feature_id = %s", [feature_ids[key]]
        return f"{prefix}event_type = %s", [key]

    later = steps[1:]
    by_feature = sorted({feature_ids[k] for k in later if k in feature_ids})
    by_type = sorted({k for k in later if k not in feature_ids})
    scope: list[str] = []
    if by_feature:
        scope.append(f"e.feature_id IN ({_placeholders(by_feature)})")
    if by_type:
        scope.append(f"e.event_type IN ({_placeholders(by_type)})")
    first_cond, first_params = match(steps[0], "e.")
    people = people_sql(org, filters or {})
    if people:
        first_cond += f" AND e.end_user_id IN ({people[0]})"
        first_params += people[1]
    ctes = [
        f"""s0 AS {materialized}(
            SELECT e.end_user_id AS uid, MIN(e.timestamp) AS t0, MIN(e.timestamp) AS t
            FROM telemetry_usageevent e
            WHERE e.organization_id = %s AND e.end_user_id IS NOT NULL
              AND e.timestamp >= %s AND e.timestamp < %s AND {first_cond}
            GROUP BY e.end_user_id)""",
        f"""ev AS {materialized}(
            SELECT e.end_user_id AS uid, e.timestamp AS ts, e.feature_id AS fid, e.event_type AS et
            FROM telemetry_usageevent e
            WHERE e.organization_id = %s AND e.end_user_id IS NOT NULL
              AND e.timestamp > %s AND e.timestamp < %s AND ({" OR ".join(scope)}))""",
    ]
    params: list[Any] = [org.pk, db_datetime(lo), db_datetime(hi), *first_params]
    params += [org.pk, db_datetime(lo), db_datetime(horizon), *by_feature, *by_type]
    for i, key in enumerate(later, start=1):
        cond, cond_params = match(key, "e.")
        cond = cond.replace("e.feature_id", "e.fid").replace("e.event_type", "e.et")
        if connection.vendor == "postgresql":
            # The step's events meet the previous step's users in a FULL JOIN, which
            # PostgreSQL can only hash or merge, never loop; it sits alone in its CTE, as a
            # WHERE on it would make it an inner join again (see `retention_sql`).
            ctes.append(
                f"""e{i} AS MATERIALIZED (SELECT e.uid, e.ts FROM ev e WHERE {cond}),
            j{i} AS MATERIALIZED (
                SELECT p.uid, p.t0, p.t, e.ts FROM s{i - 1} p FULL JOIN e{i} e ON e.uid = p.uid),
            s{i} AS MATERIALIZED (
                SELECT p.uid, p.t0, MIN(p.ts) AS t FROM j{i} p
                WHERE p.ts > p.t AND p.ts <= {window_sql}
                GROUP BY p.uid, p.t0)"""
            )
            params += [*cond_params, window_param]
        else:
            ctes.append(
                f"""s{i} AS (
                SELECT p.uid, p.t0, MIN(e.ts) AS t
                FROM s{i - 1} p JOIN ev e ON e.uid = p.uid
                WHERE e.ts > p.t AND e.ts <= {window_sql} AND {cond}
                GROUP BY p.uid, p.t0)"""
            )
            params += [window_param, *cond_params]
    counts_sql = ", ".join(f"(SELECT COUNT(*) FROM s{i})" for i in range(len(steps)))
    return f"WITH {', '.join(ctes)} SELECT {counts_sql}", params


@contextmanager
def _bounded(db: BaseDatabaseWrapper) -> Iterator[None]:
    """Stop the funnel statement after `DB_STATEMENT_TIMEOUT_MS` on SQLite too, which has
    no statement timeout: its progress handler interrupts the statement (PostgreSQL's web
    connections carry `statement_timeout` already). Either way the request answers 503
    with Retry-After (`core.exceptions.database_failure`), never hangs. No query is added."""
    limit_ms = settings.DB_STATEMENT_TIMEOUT_MS
    if db.vendor != "sqlite" or not limit_ms:
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
            raise StorageUnavailable(QUERY_TIMEOUT_DETAIL, retry_after=QUERY_TIMEOUT_RETRY_AFTER) from exc
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
        result.append(
            {
                "step": i + 1,
                "key": key,
                "kind": "feature" if key in feature_ids else "event_type",
                "users": users,
                "conversion_from_prev": 100.0 if i == 0 and users else (percent(users, counts[i - 1]) if i else 0.0),
                "conversion_from_start": percent(users, counts[0]),
            }
        )
    return {"window_days": window_days, "start": start, "end": end, "steps": result}
