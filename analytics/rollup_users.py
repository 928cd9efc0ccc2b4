"""The per-user rows of a day's rollup (DailyUserFeatureUsage, DailyUserUsage), called by
`rollup.rollup_day` inside its transaction once the day's groups (`rollup_day_events`, one
row per feature, end user and session) exist.

The groups are aggregated once per (feature, end user) into `rollup_day_pairs` (anonymous
events included, as end user NULL: the feature and organisation rows are derived from these
pairs too), and those per end user into `rollup_day_users`; the tables' rows are then copied
from these aggregates without grouping again. The day's sessions are grouped once into
`rollup_day_sessions` (whose user each belongs to, or that it is shared by several): the
distinct sessions of users, features and the organisation are counted from it and the
pairs, the groups read again only for the sessions that are shared.

How a day's rows are written depends on whether it has any yet (one indexed probe per table
tells; the rollup holds the day's lock, so no other rollup of it runs meanwhile):
- first roll: a plain INSERT in the unique key's order — no conflict to look for;
- re-roll (the hourly roll of today, the nightly roll of yesterday, late events): the day's
  rows and aggregates are compared in one join; rows whose key vanished are deleted, rows
  whose figures changed are updated, missing rows inserted.
  An unchanged row is neither written nor locked (`INSERT … ON CONFLICT DO UPDATE … WHERE`
  locks every conflicting row, which writes each of the day's hundreds of thousands of
  tuples even when nothing changed), so `computed_at` stays when the row last changed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from django.db import connection

from .temp_tables import on_postgres, temp_table_fill, temp_tables_release

PAIRS_TABLE = "rollup_day_pairs"
USERS_TABLE = "rollup_day_users"

SESSIONS_TABLE = "rollup_day_sessions"

# Counts and sums are cast to INTEGER, the per-user tables' own type (a figure too large
# for it could not be stored anyway): PostgreSQL sums integers into a bigint by value, where
# a sum of bigints is a numeric allocated per group — the pairs' grouping of the peak day
# took ~40 % longer and 200 MB, and every sum over the pairs after it paid numeric
# additions. The organisation is the one rolled up, not a grouping key. Parameter: it.
_PAIRS_SQL = """
SELECT CAST(%s AS BIGINT) AS organization_id, feature_id, end_user_id, CAST(SUM(events) AS INTEGER) AS event_count,
       CAST(COUNT(session_key) AS INTEGER) AS sessions, COALESCE(SUM(duration), 0) AS total_session_duration,
       CAST(SUM(timed) AS INTEGER) AS timed_events, MIN(first_at) AS first_at, MAX(last_at) AS last_at
FROM rollup_day_events
GROUP BY feature_id, end_user_id
"""
# The day's sessions, one row each: its end user when all its groups have the same one
# (NULL: all anonymous) and `shared` 0, else `shared` 1 (several users, or users and
# anonymous events). A session nearly always belongs to one user or none; for those, the
# distinct sessions of a feature are its groups with a session (a session's groups of one
# feature differ by user only, here one), and a user's distinct sessions are its rows here.
# Only shared sessions need their groups looked at again. This one grouping of the groups
# by session (tens of thousands of keys) replaces three hashes of distinct (feature |
# user |, session) keys over all the groups (~1 s of the peak day's re-roll).
_SESSIONS_SQL = """
SELECT session_key, MIN(end_user_id) AS end_user_id,
       CASE WHEN COUNT(end_user_id) = 0 THEN 0
            WHEN COUNT(end_user_id) = COUNT(*) AND MIN(end_user_id) = MAX(end_user_id) THEN 0
            ELSE 1 END AS shared
FROM rollup_day_events WHERE session_key IS NOT NULL
GROUP BY session_key
"""
SHARED_SESSIONS = f"(SELECT session_key FROM {SESSIONS_TABLE} WHERE shared = 1)"
# A user's distinct sessions: its sessions of its own, plus the shared ones it has a group in.
_USERS_SQL = f"""
SELECT p.organization_id, p.end_user_id, p.event_count, CAST(COALESCE(s.sessions, 0) AS INTEGER) AS sessions,
       p.total_session_duration, p.timed_events, p.features_used, p.first_event_at, p.last_event_at
FROM (
    SELECT organization_id, end_user_id, CAST(SUM(event_count) AS INTEGER) AS event_count,
           SUM(total_session_duration) AS total_session_duration,
           CAST(SUM(timed_events) AS INTEGER) AS timed_events, CAST(COUNT(*) AS INTEGER) AS features_used,
           MIN(first_at) AS first_event_at, MAX(last_at) AS last_event_at
    FROM {PAIRS_TABLE} WHERE end_user_id IS NOT NULL
    GROUP BY organization_id, end_user_id
) p LEFT JOIN (
    SELECT end_user_id, COUNT(*) AS sessions FROM (
        SELECT end_user_id, session_key FROM {SESSIONS_TABLE} WHERE shared = 0 AND end_user_id IS NOT NULL
        UNION ALL
        SELECT end_user_id, session_key FROM rollup_day_events
        WHERE end_user_id IS NOT NULL AND session_key IN {SHARED_SESSIONS}
        GROUP BY end_user_id, session_key
    ) d GROUP BY end_user_id
) s ON s.end_user_id = p.end_user_id
"""

_FIGURES = ("event_count", "sessions", "total_session_duration", "timed_events")
_USER_FEATURE = ("analytics_dailyuserfeatureusage", PAIRS_TABLE, ("feature_id", "end_user_id"), _FIGURES)
_USER = (
    "analytics_dailyuserusage",
    USERS_TABLE,
    ("end_user_id",),
    (*_FIGURES, "features_used", "first_event_at", "last_event_at"),
)


_DIFF_TABLE = "rollup_day_diff"


def _sqls(table: str, source: str, key: tuple[str, ...], figures: tuple[str, ...]) -> dict[str, str]:
    """The statements writing `table` from `source` (same column names). Parameters — any:
    organisation, day; first: day, now; diff: organisation, day; stale: none; changed: now;
    missing: organisation, day, now; together: those of diff, changed and missing."""
    columns = ", ".join(["organization_id", "date", *key, *figures, "computed_at"])
    # In the order of the unique key: each new index entry lands next to the previous one.
    order = ", ".join(f"s.{c}" for c in key)
    values = ", ".join(f"s.{c}" for c in (*key, *figures))
    day_rows = "organization_id = %s AND date = %s"
    # The day's rows and its aggregates, joined once on the key (one hash of each side, where
    # a delete, an update and an insert would each hash one side again): what is left is
    # the rows to change — stale (no aggregate), changed (a figure differs; every figure is
    # NOT NULL, so `<>` is exact) and missing (no row).
    diff = (
        f"SELECT t.id AS row_id, {values}"
        f" FROM (SELECT id, {', '.join((*key, *figures))} FROM {table} WHERE {day_rows}) t"
        f" FULL JOIN (SELECT * FROM {source} WHERE end_user_id IS NOT NULL) s"
        f" ON {' AND '.join(f't.{c} = s.{c}' for c in key)}"
        f" WHERE t.id IS NULL OR s.end_user_id IS NULL OR {' OR '.join(f't.{c} <> s.{c}' for c in figures)}"
    )
    stale = f"DELETE FROM {table} WHERE id IN (SELECT row_id FROM {_DIFF_TABLE} WHERE end_user_id IS NULL)"
    changed = (
        f"UPDATE {table} SET {', '.join(f'{c} = s.{c}' for c in figures)}, computed_at = %s"
        f" FROM {_DIFF_TABLE} s WHERE {table}.id = s.row_id AND s.end_user_id IS NOT NULL"
    )
    missing = (
        f"INSERT INTO {table} ({columns}) SELECT %s, %s, {values}, %s"
        f" FROM {_DIFF_TABLE} s WHERE s.row_id IS NULL ORDER BY {order}"
    )
    return {
        "any": f"SELECT 1 FROM {table} WHERE {day_rows} LIMIT 1",
        "first": f"INSERT INTO {table} ({columns}) SELECT s.organization_id, %s, {values}, %s"
        f" FROM {source} s WHERE s.end_user_id IS NOT NULL ORDER BY {order}",
        # SQLite: the diff as a temporary table, then one statement per kind of change.
        "diff": f"CREATE TEMPORARY TABLE {_DIFF_TABLE} AS {diff}",
        "stale": stale,
        "changed": changed,
        "missing": missing,
        # PostgreSQL: one statement, the diff a materialised CTE that the delete, the update
        # and the insert read (disjoint rows, one snapshot), answering how many rows it
        # deleted and how many it inserted. No temporary table per day and table: each
        # holds a lock until the transaction ends, and a test rolling 150 days in one
        # transaction ran the server out of lock slots (max_locks_per_transaction).
        "together": f"WITH {_DIFF_TABLE} AS MATERIALIZED ({diff}), stale AS ({stale} RETURNING 1),"
        f" changed AS ({changed}), missing AS ({missing} RETURNING 1)"
        " SELECT (SELECT COUNT(*) FROM stale), (SELECT COUNT(*) FROM missing)",
    }


_USER_FEATURE_WRITES, _USER_WRITES = _sqls(*_USER_FEATURE), _sqls(*_USER)


def per_user_groups_build(cursor: Any, org_id: int) -> None:
    """`rollup_day_pairs`, `rollup_day_sessions` and `rollup_day_users` from the day's
    groups, analysed so that the hashes reading them are sized right."""
    temp_table_fill(cursor, PAIRS_TABLE, _PAIRS_SQL, [org_id])
    # The key columns are all the joins and groupings on it need statistics of.
    cursor.execute(f"ANALYZE {PAIRS_TABLE} (feature_id, end_user_id)" if on_postgres() else f"ANALYZE {PAIRS_TABLE}")
    temp_table_fill(cursor, SESSIONS_TABLE, _SESSIONS_SQL)
    # How many sessions are shared (usually none): the lookups of their groups are then
    # planned as probes of an empty or small hash.
    cursor.execute(f"ANALYZE {SESSIONS_TABLE}")
    temp_table_fill(cursor, USERS_TABLE, _USERS_SQL)
    cursor.execute(f"ANALYZE {USERS_TABLE}")


class RowsWritten(NamedTuple):
    """What a day's write did to a table's rows: whether some were deleted (their events
    vanished, or moved to another day) and whether some were inserted (a key the day had not
    had). For the per-user-and-feature rows, whose active-day bits equal the rows after
    every run, only these can change the day's bits (`active_days`)."""

    deleted: bool
    inserted: bool


def per_user_rows_write(cursor: Any, org_id: int, day: Any, now: Any) -> RowsWritten:
    """Bring `day`'s per-user rows of `org_id` in line with the day's aggregates (`day`, `now`:
    as the backend adapts them). Returns what it did to the per-user-and-feature rows."""
    per_feature = _day_rows_write(cursor, _USER_FEATURE_WRITES, org_id, day, now)
    _day_rows_write(cursor, _USER_WRITES, org_id, day, now)
    return per_feature


def _day_rows_write(cursor: Any, sqls: dict[str, str], org_id: int, day: Any, now: Any) -> RowsWritten:
    """One table's rows of the day: inserted plainly on the day's first roll, only the rows
    that differ written on a re-roll."""
    cursor.execute(sqls["any"], [org_id, day])
    if cursor.fetchone() is None:
        cursor.execute(sqls["first"], [day, now])
        return RowsWritten(deleted=False, inserted=cursor.rowcount != 0)
    if connection.vendor == "postgresql":
        cursor.execute(sqls["together"], [org_id, day, now, org_id, day, now])
        deleted, inserted = cursor.fetchone()
    else:
        cursor.execute(sqls["diff"], [org_id, day])
        cursor.execute(sqls["stale"])
        deleted = cursor.rowcount
        cursor.execute(sqls["changed"], [now])
        cursor.execute(sqls["missing"], [org_id, day, now])
        inserted = cursor.rowcount
        cursor.execute(f"DROP TABLE {_DIFF_TABLE}")
    return RowsWritten(deleted=deleted != 0, inserted=inserted != 0)


def per_user_groups_drop(cursor: Any) -> None:
    temp_tables_release(cursor, PAIRS_TABLE, SESSIONS_TABLE, USERS_TABLE)
