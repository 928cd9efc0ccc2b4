"""Weekly cohorts by first-seen week: D1/D7/D30 and the week-by-week grid."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db import connection, connections

from core.days import today
from core.db_routing import read_alias
from tenants.models import Organization

from ..active_days import ALL_DAYS, BLOCK_DAYS, block_of
from .cache import cached
from .common import (
    bounds,
    date_number_sql,
    day_number,
    day_number_sql,
    db_datetime,
    feature_pk,
    percent,
    week_monday,
)
from .filters import people_sql

RETENTION_DAYS = (1, 7, 30)


def retention_sql(
    org: Organization, *, first: date, end: date, filters: dict[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """The retention statement for cohorts from the week of `first` to `end`: rows of
    (kind, cohort week, k, users) — kind 0: cohort sizes; 1: users active in week k of their
    cohort; 2: users active exactly k ∈ {1, 7, 30} days after their first day. Activity is
    read from the per-user rollups: one row per end user and active day, never an event.

    Its cost cannot depend on table statistics: without them (a fresh, never-ANALYZEd table)
    or with stale ones the planner once nested a scan of every event of the period inside a
    loop over the cohort, 193 s on 200,000 events. On PostgreSQL the period's active days
    meet the cohort in a FULL JOIN, which PostgreSQL can only hash or merge, never loop, so
    every plan is one pass over the period's rows; the join sits alone in its CTE, because a
    WHERE on it would turn it back into an inner join. SQLite plans by rules: its CROSS JOIN
    makes the cohort the outer loop, each member one range of (organization, end_user, date).

    `filters`: the person filters narrow the cohort (a subquery of end-user ids); a feature
    makes "active" mean "used that feature" (the per-user feature rollup, one row per user
    and day for one feature, so the counts below stay exact)."""
    filters = filters or {}
    lo, hi = bounds(first, end)
    base = day_number(first)
    d0 = day_number_sql("first_seen")
    d = date_number_sql("a.date")
    people = people_sql(org, filters)
    only_people = f" AND id IN ({people[0]})" if people else ""
    cohort = f"""SELECT id, {d0} AS d0 FROM telemetry_enduser
        WHERE organization_id = %s AND first_seen >= %s AND first_seen < %s{only_people}"""
    period = "a.organization_id = %s AND a.date >= %s AND a.date <= %s"
    activity, activity_params = "analytics_dailyuserusage", list[Any]()
    feature_id = feature_pk(filters.get("feature"))
    if feature_id is not None:
        activity = "analytics_dailyuserfeatureusage"
        period += " AND a.feature_id = %s"
        activity_params = [feature_id]
    if connection.vendor == "postgresql":
        ctes = f"""cohort AS MATERIALIZED ({cohort}),
            act AS MATERIALIZED (
                SELECT c.id AS uid, c.d0, {d} AS d
                FROM (SELECT end_user_id, date FROM {activity} a WHERE {period}) a
                FULL JOIN cohort c ON c.id = a.end_user_id
            )"""
    else:
        ctes = f"""cohort AS ({cohort}),
            act AS (
                SELECT c.id AS uid, c.d0, {d} AS d
                FROM cohort c CROSS JOIN {activity} a WHERE a.end_user_id = c.id AND {period}
            )"""
    # Rows of the join without a cohort member or without an active day have a NULL uid or
    # day: the comparisons below leave them out. (end user, day) is unique in the rollup, so
    # kind 2 counts users without DISTINCT.
    sql = f"""
        WITH {ctes}
        SELECT 0 AS kind, (d0 - %s) / 7 AS cw, 0 AS k, COUNT(*) FROM cohort GROUP BY 1, 2
        UNION ALL
        SELECT 1, (d0 - %s) / 7, (d - %s) / 7 - (d0 - %s) / 7, COUNT(DISTINCT uid)
        FROM act WHERE d >= d0 GROUP BY 1, 2, 3
        UNION ALL
        SELECT 2, (d0 - %s) / 7, d - d0, COUNT(*) FROM act WHERE d - d0 IN (1, 7, 30) GROUP BY 1, 2, 3
    """
    lo_db, hi_db = db_datetime(lo), db_datetime(hi)
    days = [connection.ops.adapt_datefield_value(first), connection.ops.adapt_datefield_value(end)]
    cohort_params = [org.pk, lo_db, hi_db, *(people[1] if people else [])]
    return sql, [*cohort_params, org.pk, *days, *activity_params, base, base, base, base, base]


def retention_blocks_sql(
    org: Organization, *, first: date, end: date, filters: dict[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """`retention_sql` without a feature filter, from the active-day bitmasks: one row per
    cohort member and 8-week block (`UserActiveDays`) instead of one per active day, so the
    work follows the cohort, not its activity. The same rows of (kind, cohort week, k, users).

    Each row's bits are cut to the days from the member's first day (d0) to `end`; a week of
    the block is then one test of its 7 bits and "exactly n days later" one bit, and since a
    week or a day lies in one block, the counts need no DISTINCT. The join probes the unique
    (organization, end_user, block_start) index once per member, whatever the statistics."""
    filters = filters or {}
    lo, hi = bounds(first, end)
    base = day_number(first)
    d0 = day_number_sql("first_seen")
    b = date_number_sql("a.block_start")
    people = people_sql(org, filters)
    only_people = f" AND id IN ({people[0]})" if people else ""
    materialized = "MATERIALIZED" if connection.vendor == "postgresql" else ""
    last_block = block_of(end)
    end_bits = (1 << ((end - last_block).days + 1)) - 1
    # m: the row's bits from d0 on ((bits >> s) << s clears the s low ones), to `end`. Each
    # row's eight weeks and three "n days later" are summed per cohort week and block in one
    # pass (`weekly`: a few dozen rows), which the last two selects unpivot into (k, users):
    # a cross join of every row with the weeks evaluated eight row versions per row.
    week_sums = ", ".join(
        f"SUM(CASE WHEN ((m >> {7 * j}) & 127) <> 0 THEN 1 ELSE 0 END) AS w{j}" for j in range(BLOCK_DAYS // 7)
    )
    later_sums = ", ".join(
        f"SUM(CASE WHEN d0 + {n} >= b AND d0 + {n} < b + {BLOCK_DAYS} AND ((m >> (d0 + {n} - b)) & 1) = 1"
        f" THEN 1 ELSE 0 END) AS n{n}"
        for n in RETENTION_DAYS
    )
    week_of_slot = " ".join(f"WHEN {j} THEN w{j}" for j in range(BLOCK_DAYS // 7))
    later_of_n = " ".join(f"WHEN {n} THEN n{n}" for n in RETENTION_DAYS)
    slots = ", ".join(f"({j})" for j in range(BLOCK_DAYS // 7))
    later = ", ".join(f"({n})" for n in RETENTION_DAYS)
    sql = f"""
        WITH cohort AS {materialized} (
            SELECT id, {d0} AS d0 FROM telemetry_enduser
            WHERE organization_id = %s AND first_seen >= %s AND first_seen < %s{only_people}
        ),
        act AS (
            SELECT c.d0, {b} AS b,
                   (CASE WHEN c.d0 > {b} THEN (a.active_days >> (c.d0 - {b})) << (c.d0 - {b})
                         ELSE a.active_days END)
                   & (CASE WHEN a.block_start = %s THEN CAST(%s AS BIGINT) ELSE CAST(%s AS BIGINT) END) AS m
            FROM cohort c JOIN analytics_useractivedays a ON a.end_user_id = c.id
            WHERE a.organization_id = %s AND a.block_start >= %s AND a.block_start <= %s
              AND {b} + {BLOCK_DAYS} > c.d0
        ),
        weekly AS {materialized} (
            SELECT (d0 - %s) / 7 AS cw, (b - %s) / 7 AS bw, {week_sums}, {later_sums}
            FROM act GROUP BY 1, 2
        ),
        slots (j) AS (VALUES {slots}),
        later (n) AS (VALUES {later})
        SELECT 0 AS kind, (d0 - %s) / 7 AS cw, 0 AS k, COUNT(*) FROM cohort GROUP BY 1, 2
        UNION ALL
        SELECT 1, cw, bw + j - cw, CAST(SUM(CASE j {week_of_slot} END) AS BIGINT)
        FROM weekly CROSS JOIN slots GROUP BY 1, 2, 3 HAVING SUM(CASE j {week_of_slot} END) > 0
        UNION ALL
        SELECT 2, cw, n, CAST(SUM(CASE n {later_of_n} END) AS BIGINT)
        FROM weekly CROSS JOIN later GROUP BY 1, 2, 3 HAVING SUM(CASE n {later_of_n} END) > 0
    """
    adapt = connection.ops.adapt_datefield_value
    cohort_params = [org.pk, db_datetime(lo), db_datetime(hi), *(people[1] if people else [])]
    act_params = [adapt(last_block), end_bits, ALL_DAYS, org.pk, adapt(block_of(first)), adapt(last_block)]
    return sql, [*cohort_params, *act_params, base, base, base]


@cached
def retention(
    org: Organization, *, weeks: int = 12, end: date | None = None, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Weekly cohorts of end users by first-seen week (Monday-based, the last `weeks` weeks up
    to `end`): size, D1/D7/D30 (% of the cohort with an event exactly 1, 7, 30 days after
    their first day; None until the whole cohort could have got there, and for an empty
    cohort) and the grid of % of the cohort active in each week since its start (None for an
    empty cohort). One statement grouped in SQL: over the active-day bitmasks
    (`retention_blocks_sql`), or under a feature filter the per-user feature rollups
    (`retention_sql`). `filters`: see `retention_sql`."""
    end = end or today()
    first = week_monday(end) - timedelta(days=7 * (weeks - 1))
    end_day = day_number(end)
    filters = {k: v for k, v in (filters or {}).items() if v}
    build = retention_sql if feature_pk(filters.get("feature")) is not None else retention_blocks_sql
    sql, params = build(org, first=first, end=end, filters=filters)
    sizes: dict[int, int] = {}
    grid: dict[int, dict[int, int]] = defaultdict(dict)
    days: dict[int, dict[int, int]] = defaultdict(dict)
    # Raw SQL asks no router: the read scope's database (the replica in a page or API read).
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, params)
        for kind, cw, k, n in cursor.fetchall():
            if kind == 0:
                sizes[cw] = n
            elif kind == 1:
                grid[cw][k] = n
            else:
                days[cw][k] = n
    cohorts: list[dict[str, Any]] = []
    for cw in range(weeks):
        start = first + timedelta(days=7 * cw)
        size = sizes.get(cw, 0)
        cohort_last_day = min(day_number(start) + 6, end_day)
        row: dict[str, Any] = {"cohort_start": start, "size": size}
        # An empty cohort has no percentages (None), not 0 %: nobody was there to come back.
        for n in RETENTION_DAYS:
            measurable = size > 0 and cohort_last_day + n <= end_day
            row[f"d{n}"] = percent(days[cw].get(n, 0), size) if measurable else None
        row["weeks"] = [percent(grid[cw].get(k, 0), size) if size else None for k in range(weeks - cw)]
        cohorts.append(row)
    return {"weeks": weeks, "end": end, "cohorts": cohorts}


def retention_averages(cohorts: list[dict[str, Any]]) -> dict[str, Any]:
    """Across `retention()` cohorts: `users` (their total size) and D1/D7/D30 weighted by
    cohort size, over the cohorts that have users and a measurable value (None when none
    has), so a cohort of 3 users does not count as much as one of 3,000."""
    sized = [c for c in cohorts if c["size"]]

    def weighted(key: str) -> float | None:
        values = [(c[key], c["size"]) for c in sized if c.get(key) is not None]
        weight = sum(size for _, size in values)
        return sum(v * size for v, size in values) / weight if weight else None

    return {"users": sum(c["size"] for c in sized)} | {f"d{n}": weighted(f"d{n}") for n in RETENTION_DAYS}
