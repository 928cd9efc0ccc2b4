"""The per-account rollup (DailyAccountUsage): one day's per-user rows grouped by each end
user's account, for all features and per feature. Called by `rollup.rollup_day` once the
day's per-user aggregates are final; the day's account rows are replaced whole (they are few: one
per active account and feature), so re-rolling a day, late events included, rewrites them
exactly. `account_rows_backfill` builds every day already rolled up, for the migration that
adds the table."""

from __future__ import annotations

from typing import Any

from django.db.backends.utils import CursorWrapper

from .rollup_users import PAIRS_TABLE, USERS_TABLE

# Users without an account form the NULL-account row (the "(none)" of breakdowns). Read
# from the per-user tables (`date`: "r.date", grouped by) or, in a day's rollup, from that
# day's per-user aggregates (`rollup_users`; `date`: the day as a parameter).
_ACCOUNT_SQL = """
INSERT INTO analytics_dailyaccountusage (
    organization_id, date, feature_id, account_id, event_count, active_users, sessions,
    total_session_duration, timed_events)
SELECT r.organization_id, {date}, NULL, u.account_id, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM {users} r JOIN telemetry_enduser u ON u.id = r.end_user_id
GROUP BY r.organization_id, {date_group}u.account_id
UNION ALL
SELECT r.organization_id, {date}, r.feature_id, u.account_id, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM {pairs} r JOIN telemetry_enduser u ON u.id = r.end_user_id
GROUP BY r.organization_id, {date_group}r.feature_id, u.account_id
"""


def account_rows_replace(cursor: CursorWrapper, org_id: int, day: Any) -> None:
    """Replace `org_id`'s account rows of `day` (as the backend adapts a date) from the day's
    per-user aggregates (`rollup_users`: the rows just written, read without visiting
    them, so no freshly written tuple of the shared tables is checked); inside the rollup's
    transaction, before the aggregates are dropped. The anonymous pairs join no end user."""
    cursor.execute("DELETE FROM analytics_dailyaccountusage WHERE organization_id = %s AND date = %s", [org_id, day])
    sql = _ACCOUNT_SQL.format(date="%s", date_group="", users=USERS_TABLE, pairs=PAIRS_TABLE)
    cursor.execute(sql, [day, day])


def account_rows_backfill(cursor: CursorWrapper) -> None:
    """Every organisation's account rows for every day with per-user rows (the table starts
    empty: days rolled up before it existed)."""
    cursor.execute("DELETE FROM analytics_dailyaccountusage")
    tables = {"users": "analytics_dailyuserusage", "pairs": "analytics_dailyuserfeatureusage"}
    cursor.execute(_ACCOUNT_SQL.format(date="r.date", date_group="r.date, ", **tables))
