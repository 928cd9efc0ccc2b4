"""Per person segment and day, how long its active users had been away, all features
together (`DailySegmentRecency`), and per event type (`DailyEventTypeRecency`): the rows'
build, run with the day's other recency rows (`recency.recency_day_rebuild`), and the
distinct-users reads over a range and per week that the age, gender and event-type
breakdowns, the summary's active users and the weekly series take from them.

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
from .models import DailyEventTypeRecency, DailySegmentRecency
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
    segments: dict[tuple[str, str], dict[int, int]] = defaultdict(dict)
    for age_band, gender, gap, users in _day_gaps(cursor, _DAY_SQL, org_id, day):
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


# The day's users per event type and gap: each (user, type) row of the day's block, and its
# rows of the two blocks before (one probe each of the table's unique key).
_EVENT_TYPE_DAY_SQL = """
SELECT a.event_type, {gap}, COUNT(*)
FROM analytics_usereventtypeactivedays a
LEFT JOIN analytics_usereventtypeactivedays p1
  ON p1.organization_id = a.organization_id AND p1.block_start = %s AND p1.event_type = a.event_type
 AND p1.end_user_id = a.end_user_id
LEFT JOIN analytics_usereventtypeactivedays p2
  ON p2.organization_id = a.organization_id AND p2.block_start = %s AND p2.event_type = a.event_type
 AND p2.end_user_id = a.end_user_id
WHERE a.organization_id = %s AND a.block_start = %s AND (a.active_days & CAST(%s AS BIGINT)) <> 0
GROUP BY 1, 2
"""


def event_type_recency_build(cursor: Any, org_id: int, day: date) -> None:
    """Write the organisation's DailyEventTypeRecency rows of `day` from its per-event-type
    bitmasks (the caller has deleted the day's old rows)."""
    types: dict[str, dict[int, int]] = defaultdict(dict)
    for event_type, gap, users in _day_gaps(cursor, _EVENT_TYPE_DAY_SQL, org_id, day):
        types[event_type][int(gap)] = int(users)
    DailyEventTypeRecency.objects.bulk_create(
        DailyEventTypeRecency(
            organization_id=org_id,
            date=day,
            event_type=event_type,
            gaps={str(gap): users for gap, users in sorted(gaps.items())},
        )
        for event_type, gaps in types.items()
    )


def _day_gaps(cursor: Any, sql: str, org_id: int, day: date) -> list[tuple[Any, ...]]:
    """The groups of `sql` (a day's statement above) for the organisation's `day`."""
    ops = connection.ops
    block = block_of(day)
    earlier = [ops.adapt_datefield_value(block - timedelta(days=BLOCK_DAYS * k)) for k in (1, 2)]
    cursor.execute(
        sql.replace("{gap}", gap_sql((day - block).days, _BLOCKS)),
        [*earlier, org_id, ops.adapt_datefield_value(block), day_bit(day)],
    )
    return cursor.fetchall()


# The range's rows, then a row of NULLs per day of the range that is stale, or has active
# users but no row (rolled by code older than the rows, not yet marked): one statement.
_ROWS_SQL = """
SELECT r.date, {key}, r.gaps FROM {table} r
WHERE r.organization_id = %s AND r.date >= %s AND r.date <= %s {conditions}
UNION ALL
SELECT NULL, NULL, NULL FROM analytics_featurerecencystale s
WHERE s.organization_id = %s AND s.date >= %s AND s.date <= %s
UNION ALL
SELECT NULL, NULL, NULL FROM analytics_dailyorgusage o
WHERE o.organization_id = %s AND o.date >= %s AND o.date <= %s AND o.active_users > 0
  AND NOT EXISTS (SELECT 1 FROM {table} d WHERE d.organization_id = o.organization_id AND d.date = o.date)
"""

# (day, the row's value of the dimension read, gaps)
RecencyRow = tuple[date, str, dict[str, int]]


def _rows(
    db_alias: str, table: str, key: str, org_id: int, first: date, last: date, conditions: dict[str, str | None]
) -> list[RecencyRow] | None:
    """[(day, `key`, gaps)] of `table`'s rows of first..last whose columns equal the
    `conditions` given (None: any), in one statement on `db_alias`; None when a day of
    first..last is stale or has active users but no row (then the bitmasks answer)."""
    db = connections[db_alias]
    first_day, last_day = db.ops.adapt_datefield_value(first), db.ops.adapt_datefield_value(last)
    where, params = "", [org_id, first_day, last_day]
    for column, value in conditions.items():
        if value is not None:
            where += f" AND r.{column} = %s"
            params.append(value)
    with db.cursor() as cursor:
        cursor.execute(
            _ROWS_SQL.format(table=table, key=key, conditions=where), [*params, *[org_id, first_day, last_day] * 2]
        )
        rows = cursor.fetchall()
    if any(day is None for day, *_ in rows):
        return None
    # SQLite's dates and both backends' JSON come back as text from a raw statement.
    return [
        (
            day if isinstance(day, date) else date.fromisoformat(day),
            value,
            gaps if isinstance(gaps, dict) else json.loads(gaps),
        )
        for day, value, gaps in rows
    ]


def segment_rows(
    db_alias: str,
    org_id: int,
    first: date,
    last: date,
    *,
    by: str | None = None,
    age_band: str | None = None,
    gender: str | None = None,
) -> list[RecencyRow] | None:
    """The per-segment rows of first..last of the users in `age_band` and `gender` when
    given, each with its age band (`by` "age"), gender ("gender") or "" (None) as its value
    ("" also for an unknown age or gender); None as `_rows`."""
    key = {"age": "r.age_band", "gender": "r.gender"}.get(by or "", "''")
    table = DailySegmentRecency._meta.db_table
    return _rows(db_alias, table, key, org_id, first, last, {"age_band": age_band, "gender": gender})


def event_type_rows(db_alias: str, org_id: int, first: date, last: date) -> list[RecencyRow] | None:
    """The per-event-type rows of first..last, each with its event type as its value; None
    as `_rows`."""
    return _rows(db_alias, DailyEventTypeRecency._meta.db_table, "r.event_type", org_id, first, last, {})


def reaches(start: date, end: date) -> bool:
    """Whether the rows count distinct users over start..end (they look RECENCY_DAYS back)."""
    return start <= end and (end - start).days <= RECENCY_DAYS


def _new_since(gaps: dict[str, int], days: int) -> int:
    """Of a day's users (`gaps`), those not active on the `days` days before it."""
    return sum(users for gap, users in gaps.items() if gap == "0" or int(gap) > days)


def users_within(rows: list[RecencyRow], start: date, end: date) -> Counter[str]:
    """{value: distinct users within start..end (`reaches`)} per value of `rows`."""
    users: Counter[str] = Counter()
    for day, value, gaps in rows:
        if start <= day <= end:
            users[value] += _new_since(gaps, (day - start).days)
    return +users


def weekly_within(rows: list[RecencyRow], start: date, end: date) -> dict[str, Counter[date]]:
    """{value: {Monday: distinct users of that week within start..end}} per value of `rows`."""
    weekly: dict[str, Counter[date]] = defaultdict(Counter)
    for day, value, gaps in rows:
        if start <= day <= end:
            monday = day - timedelta(days=day.weekday())
            weekly[value][monday] += _new_since(gaps, (day - max(monday, start)).days)
    return {value: +weeks for value, weeks in weekly.items() if +weeks}
