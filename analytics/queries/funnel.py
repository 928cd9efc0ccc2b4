"""Ordered funnels counted per end user, in one SQL statement."""

from __future__ import annotations

from collections.abc import Sized
from datetime import date, timedelta
from typing import Any

from django.db import connections

from core.db_routing import read_alias
from telemetry.models import Feature
from tenants.models import Organization

from .cache import cached
from .common import bounds, db_datetime, percent, plus_days_sql


@cached
def funnel(org: Organization, *, steps: list[str], window_days: int = 7, start: date, end: date) -> dict[str, Any]:
    """Ordered funnel counted per end user: a user enters at their first event of step 1 in
    start..end; each later step counts when that user has a matching event after the previous
    step and within `window_days` of entering. A step naming a feature key of `org` matches
    that feature's events, any other step the events of that event type.

    One SQL statement: the candidate events (any step's feature or type, one index range per
    feature) are read once into the `ev` CTE, then one CTE per step joins the previous
    step's users to it."""
    feature_ids = dict(Feature.objects.filter(organization=org, key__in=steps).values_list("key", "id"))
    lo, hi = bounds(start, end)
    horizon = hi + timedelta(days=window_days)
    window_sql, window_kind = plus_days_sql("p.t0")
    window_param = window_days if window_kind == "int" else f"+{window_days} days"

    def placeholders(values: Sized) -> str:
        return ", ".join(["%s"] * len(values))

    def match(key: str) -> tuple[str, list[Any]]:
        if key in feature_ids:
            return "e.fid = %s", [feature_ids[key]]
        return "e.et = %s", [key]

    by_feature = sorted({feature_ids[k] for k in steps if k in feature_ids})
    by_type = sorted({k for k in steps if k not in feature_ids})
    scope: list[str] = []
    if by_feature:
        scope.append(f"e.feature_id IN ({placeholders(by_feature)})")
    if by_type:
        scope.append(f"e.event_type IN ({placeholders(by_type)})")
    ctes = [
        f"""ev AS (
            SELECT e.end_user_id AS uid, e.timestamp AS ts, e.feature_id AS fid, e.event_type AS et
            FROM telemetry_usageevent e
            WHERE e.organization_id = %s AND e.end_user_id IS NOT NULL
              AND e.timestamp >= %s AND e.timestamp < %s AND ({" OR ".join(scope)}))"""
    ]
    params: list[Any] = [org.pk, db_datetime(lo), db_datetime(horizon), *by_feature, *by_type]
    cond, cond_params = match(steps[0])
    ctes.append(
        f"""s0 AS (
            SELECT e.uid, MIN(e.ts) AS t0, MIN(e.ts) AS t FROM ev e
            WHERE e.ts < %s AND {cond} GROUP BY e.uid)"""
    )
    params += [db_datetime(hi), *cond_params]
    for i, key in enumerate(steps[1:], start=1):
        cond, cond_params = match(key)
        ctes.append(
            f"""s{i} AS (
            SELECT p.uid, p.t0, MIN(e.ts) AS t
            FROM s{i - 1} p JOIN ev e ON e.uid = p.uid
            WHERE e.ts > p.t AND e.ts <= {window_sql} AND {cond}
            GROUP BY p.uid, p.t0)"""
        )
        params += [window_param, *cond_params]
    counts_sql = ", ".join(f"(SELECT COUNT(*) FROM s{i})" for i in range(len(steps)))
    # Raw SQL asks no router: the read scope's database (the replica in a page or API read).
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(f"WITH {', '.join(ctes)} SELECT {counts_sql}", params)
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
