"""The day's (feature, end user) pairs summed per feature and group of people, once for the
two rollups that split features by who used them: per person segment (age band and gender,
DailySegmentUsage, `rollup`) and per account (DailyAccountUsage, `rollup_accounts`).

Both joined the day's pairs (465,000 on the bench's peak day) with the end users and grouped
them on their own (~0.4 s of CPU each); one join grouped twice (GROUPING SETS on PostgreSQL)
gives both, in a temporary table of a few thousand rows that each step copies. Each user's
profile is read as it is at rollup time, as before. Called inside `rollup_day`'s transaction
once the pairs exist (`rollup_users.per_user_groups_build`)."""

from __future__ import annotations

from typing import Any

from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .rollup_users import PAIRS_TABLE
from .temp_tables import on_postgres, temp_table_fill, temp_tables_release

FEATURE_PEOPLE_TABLE = "rollup_day_feature_people"
# `per_segment` 1: a feature's pairs of one segment (account NULL); 0: of one account (NULL:
# users without one; age band and gender NULL). The anonymous pairs join no end user.
_FIGURES = """SUM(r.event_count) AS events, COUNT(*) AS users, SUM(r.sessions) AS sessions,
       SUM(r.total_session_duration) AS duration, SUM(r.timed_events) AS timed"""
_FROM = f"FROM {PAIRS_TABLE} r JOIN telemetry_enduser u ON u.id = r.end_user_id"
_SEGMENT_KEY = f"r.feature_id, {AGE_BAND_SQL}, {GENDER_SQL}"
_ACCOUNT_KEY = "r.feature_id, u.account_id"


def _sql() -> str:
    if on_postgres():
        # GROUPING(u.account_id) is 1 where the account is not a key: the segment rows.
        return f"""
SELECT GROUPING(u.account_id) AS per_segment, r.feature_id, {AGE_BAND_SQL} AS age_band, {GENDER_SQL} AS gender,
       u.account_id, {_FIGURES}
{_FROM}
GROUP BY GROUPING SETS (({_SEGMENT_KEY}), ({_ACCOUNT_KEY}))"""
    # SQLite has no GROUPING SETS (and only embedded-sized days): the two groupings apart.
    return f"""
SELECT 1 AS per_segment, r.feature_id, {AGE_BAND_SQL} AS age_band, {GENDER_SQL} AS gender,
       CAST(NULL AS BIGINT) AS account_id, {_FIGURES}
{_FROM} GROUP BY {_SEGMENT_KEY}
UNION ALL
SELECT 0, r.feature_id, NULL, NULL, u.account_id, {_FIGURES}
{_FROM} GROUP BY {_ACCOUNT_KEY}"""


def feature_people_build(cursor: Any) -> None:
    """`rollup_day_feature_people` from the day's pairs and the end users' profiles."""
    temp_table_fill(cursor, FEATURE_PEOPLE_TABLE, _sql())


# The day's per-feature figures per segment and per account as its last roll wrote them
# (DailySegmentUsage, DailyAccountUsage) and as the pairs give them now, in the same shape.
# Parameters: the organisation, the day, twice.
_ROLLED = """
SELECT 1, feature_id, age_band, gender, NULL, event_count, active_users FROM analytics_dailysegmentusage
WHERE organization_id = %s AND date = %s AND feature_id IS NOT NULL
UNION ALL
SELECT 0, feature_id, NULL, NULL, account_id, event_count, active_users FROM analytics_dailyaccountusage
WHERE organization_id = %s AND date = %s AND feature_id IS NOT NULL"""
_NOW = f"SELECT per_segment, feature_id, age_band, gender, account_id, events, users FROM {FEATURE_PEOPLE_TABLE}"
# The rolled rows as one operand (UNION ALL and EXCEPT bind alike, left to right).
_ROLLED_ROWS = f"SELECT * FROM ({_ROLLED}) rolled"
_MOVED_SQL = f"SELECT 1 WHERE EXISTS ({_ROLLED_ROWS} EXCEPT {_NOW}) OR EXISTS ({_NOW} EXCEPT {_ROLLED_ROWS})"


def people_moved(cursor: Any, org_id: int, day: Any) -> bool:
    """Whether the day's per-feature segment and account figures about to be written differ
    from those of its last roll: a user's age, gender or account changed since (or the day's
    users or events did), so the day's recency rows, split by segment and account, must be
    rebuilt. Before the day's segment and account rows are replaced; `day` as the backend
    adapts a date. One comparison in the database, both ways."""
    cursor.execute(_MOVED_SQL, [org_id, day, org_id, day, org_id, day, org_id, day])
    return cursor.fetchone() is not None


def feature_people_drop(cursor: Any) -> None:
    temp_tables_release(cursor, FEATURE_PEOPLE_TABLE)
