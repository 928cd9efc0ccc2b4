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


def feature_people_drop(cursor: Any) -> None:
    temp_tables_release(cursor, FEATURE_PEOPLE_TABLE)
