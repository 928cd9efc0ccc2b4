"""The per-account rollup (DailyAccountUsage): one day's per-user rows grouped by each end
user's account, for all features and per feature. Called by `rollup.rollup_day` once the
day's per-user rows are final; the day's account rows are replaced whole (they are few: one
per active account and feature), so re-rolling a day, late events included, rewrites them
exactly. `account_rows_backfill` builds every day already rolled up, for the migration that
adds the table."""

from __future__ import annotations

from typing import Any

from django.db.backends.utils import CursorWrapper

# Users without an account form the NULL-account row (the "(none)" of breakdowns).
_ACCOUNT_SQL = """
INSERT INTO analytics_dailyaccountusage (
    organization_id, date, feature_id, account_id, event_count, active_users, sessions,
    total_session_duration, timed_events)
SELECT r.organization_id, r.date, NULL, u.account_id, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
{where}
GROUP BY r.organization_id, r.date, u.account_id
UNION ALL
SELECT r.organization_id, r.date, r.feature_id, u.account_id, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM analytics_dailyuserfeatureusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
{where}
GROUP BY r.organization_id, r.date, r.feature_id, u.account_id
"""
_ONE_DAY = "WHERE r.organization_id = %s AND r.date = %s"


def account_rows_replace(cursor: CursorWrapper, org_id: int, day: Any) -> None:
    """Replace `org_id`'s account rows of `day` (as the backend adapts a date) from its
    per-user rows; inside the rollup's transaction."""
    cursor.execute("DELETE FROM analytics_dailyaccountusage WHERE organization_id = %s AND date = %s", [org_id, day])
    cursor.execute(_ACCOUNT_SQL.format(where=_ONE_DAY), [org_id, day, org_id, day])


def account_rows_backfill(cursor: CursorWrapper) -> None:
    """Every organisation's account rows for every day with per-user rows (the table starts
    empty: days rolled up before it existed)."""
    cursor.execute("DELETE FROM analytics_dailyaccountusage")
    cursor.execute(_ACCOUNT_SQL.format(where=""))
