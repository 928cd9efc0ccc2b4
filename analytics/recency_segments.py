"""Per person segment and day, how long its active users had been away, all features
together (`DailySegmentRecency`): the rows' build, run with the day's other recency rows
(`recency.recency_day_rebuild`), and the distinct-users reads over a range and per week
that the age and gender breakdowns take from them.

Over start..end a user is counted on their first active day d of the range, exactly the day
where they had been away for the d - start days before; a week's users likewise from the
week's first day in the range. So distinct users per age band or gender are sums over at
most 16 rows a day, where the active-day bitmasks hold one row per user and block, each
joined to its user's profile. A user counts in the segment they were in when their first
day's rows were built, as the segment rollups count them (docs/decisions.md, 2026-12-02)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

from django.db import connection, connections

from .active_days import BLOCK_DAYS, block_of, day_bit
from .models import DailySegmentRecency
from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .recency_gaps import RECENCY_DAYS, gap_sql

# The day's active users per segment and gap: each user's row of the day's block, and their
# rows of the two blocks before (one index probe each), for the days before it.
_DAY_SQL = f"""
SELECT {AGE_BAND_SQL}, {GENDER_SQL}, {{gap}}, COUNT(*)
FROM analytics_useractivedays a
LEFT JOIN analytics_useractivedays p1
  ON p1.organization_id = a.organization_id AND p1.end_user_id = a.end_user_id AND p1.block_start = %s
LEFT JOIN analytics_useractivedays p2
  ON p2.organization_id = a.organization_id AND p2.end_user_id = a.end_user_id AND p2.block_start = %s
LEFT JOIN telemetry_enduser u ON u.id = a.end_user_id
WHERE a.organization_id = %s AND a.block_start = %s AND (a.active_days & CAST(%s AS BIGINT)) <> 0
GROUP BY 1, 2, 3
"""
# A missing row of an earlier block is NULL, whose bit test is not true: no day there.
_BLOCKS = ("a.active_days", "p1.active_days", "p2.active_days")


def segment_recency_build(cursor: Any, org_id: int, day: date) -> None:
    """Write the organisation's DailySegmentRecency rows of `day` from its user bitmasks and
    its users' profiles now (the caller has deleted the day's old rows)."""
    ops = connection.ops
    block = block_of(day)
    earlier = [ops.adapt_datefield_value(block - timedelta(days=BLOCK_DAYS * k)) for k in (1, 2)]
    cursor.execute(
        _DAY_SQL.replace("{gap}", gap_sql((day - block).days, _BLOCKS)),
        [*earlier, org_id, ops.adapt_datefield_value(block), day_bit(day)],
    )
    segments: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for age_band, gender, gap, users in cursor.fetchall():
        segments[age_band, gender][int(gap)] = int(users)
    DailySegmentRecency.objects.bulk_create(
        DailySegmentRecency(
            organization_id=org_id,
            date=day,
            age_band=age_band,
            gender=gender,
            gaps={str(gap): users for gap, users in sorted(gaps.items())},
        )
        for (age_band, gender), gaps in segments.items()
    )


# The range's rows, then a row of NULLs per day of the range that is stale, or has active
# users but no row (rolled by code older than the rows, not yet marked): one statement.
_ROWS_SQL = """
SELECT r.date, r.age_band, r.gender, r.gaps FROM analytics_dailysegmentrecency r
WHERE r.organization_id = %s AND r.date >= %s AND r.date <= %s {conditions}
UNION ALL
SELECT NULL, NULL, NULL, NULL FROM analytics_featurerecencystale s
WHERE s.organization_id = %s AND s.date >= %s AND s.date <= %s
UNION ALL
SELECT NULL, NULL, NULL, NULL FROM analytics_dailyorgusage o
WHERE o.organization_id = %s AND o.date >= %s AND o.date <= %s AND o.active_users > 0
  AND NOT EXISTS (
    SELECT 1 FROM analytics_dailysegmentrecency d WHERE d.organization_id = o.organization_id AND d.date = o.date)
"""


SegmentRow = tuple[date, str, str, dict[str, int]]


def segment_rows(
    db_alias: str, org_id: int, first: date, last: date, *, age_band: str | None = None, gender: str | None = None
) -> list[SegmentRow] | None:
    """[(day, age band, gender, gaps)]: the rows of first..last of the segments in `age_band`
    and `gender` when given, in one statement on `db_alias`; None when a day of first..last
    is stale or has active users but no row (then the bitmasks answer)."""
    db = connections[db_alias]
    first_day, last_day = db.ops.adapt_datefield_value(first), db.ops.adapt_datefield_value(last)
    conditions, params = "", [org_id, first_day, last_day]
    for column, value in (("age_band", age_band), ("gender", gender)):
        if value is not None:
            conditions += f" AND r.{column} = %s"
            params.append(value)
    with db.cursor() as cursor:
        cursor.execute(_ROWS_SQL.format(conditions=conditions), [*params, *[org_id, first_day, last_day] * 2])
        rows = cursor.fetchall()
    if any(day is None for day, *_ in rows):
        return None
    # SQLite's dates and both backends' JSON come back as text from a raw statement.
    return [
        (
            day if isinstance(day, date) else date.fromisoformat(day),
            row_age_band,
            row_gender,
            gaps if isinstance(gaps, dict) else json.loads(gaps),
        )
        for day, row_age_band, row_gender, gaps in rows
    ]


def reaches(start: date, end: date) -> bool:
    """Whether the rows count distinct users over start..end (they look RECENCY_DAYS back)."""
    return start <= end and (end - start).days <= RECENCY_DAYS


def _new_since(gaps: dict[str, int], days: int) -> int:
    """Of a day's users (`gaps`), those not active on the `days` days before it."""
    return sum(users for gap, users in gaps.items() if gap == "0" or int(gap) > days)


def users_within(rows: list[SegmentRow], start: date, end: date, by: str | None = None) -> Counter[str]:
    """{value: distinct users within start..end (`reaches`)} per value of `by` ("age": the
    age band, "gender"; "" unknown), or {"": all of them} without `by`, from `rows`."""
    users: Counter[str] = Counter()
    for day, age_band, gender, gaps in rows:
        if start <= day <= end:
            users[_value(by, age_band, gender)] += _new_since(gaps, (day - start).days)
    return +users


def weekly_within(rows: list[SegmentRow], start: date, end: date, by: str | None = None) -> dict[str, Counter[date]]:
    """{value: {Monday: distinct users of that week within start..end}} per value of `by`
    (as `users_within`), from `rows`."""
    weekly: dict[str, Counter[date]] = defaultdict(Counter)
    for day, age_band, gender, gaps in rows:
        if start <= day <= end:
            monday = day - timedelta(days=day.weekday())
            weekly[_value(by, age_band, gender)][monday] += _new_since(gaps, (day - max(monday, start)).days)
    return {value: +weeks for value, weeks in weekly.items() if +weeks}


def _value(by: str | None, age_band: str, gender: str) -> str:
    return age_band if by == "age" else gender if by == "gender" else ""
