"""The per-account rollup (DailyAccountUsage): one day's per-user rows grouped by each end
user's account, for all features and per feature. Called by `rollup.rollup_day` once the
day's per-user aggregates are final; the day's account rows are replaced whole (they are few: one
per active account and feature), so re-rolling a day, late events included, rewrites them
exactly. Then the day's bit of the per-account feature bitmasks (AccountFeatureActiveDays)
is brought in line with the rows just written (`account_feature_days_roll`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.db import connection
from django.db.backends.utils import CursorWrapper

from .active_days import bitmask_steps_lock, block_of, day_bit
from .planner import plans_without
from .rollup_people import FEATURE_PEOPLE_TABLE
from .rollup_users import USERS_TABLE

# Users without an account form the NULL-account row (the "(none)" of breakdowns). Read
# from the day's per-user aggregates (`rollup_users`), per feature from the pairs already
# summed per account (`rollup_people`). Parameters: the day, the organisation, the day.
_ACCOUNT_SQL = f"""
INSERT INTO analytics_dailyaccountusage (
    organization_id, date, feature_id, account_id, event_count, active_users, sessions,
    total_session_duration, timed_events, last_event_at)
SELECT r.organization_id, %s, NULL, u.account_id, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events), MAX(r.last_event_at)
FROM {USERS_TABLE} r JOIN telemetry_enduser u ON u.id = r.end_user_id
GROUP BY r.organization_id, u.account_id
UNION ALL
SELECT %s, %s, feature_id, account_id, events, users, sessions, duration, timed, NULL
FROM {FEATURE_PEOPLE_TABLE} WHERE per_segment = 0
"""


def account_rows_replace(cursor: CursorWrapper, org_id: int, day: Any) -> None:
    """Replace `org_id`'s account rows of `day` (as the backend adapts a date) from the day's
    per-user aggregates (`rollup_users`, `rollup_people`: the rows just written, read without
    visiting them, so no freshly written tuple of the shared tables is checked); inside the
    rollup's transaction, before the aggregates are dropped. The anonymous pairs join no end
    user."""
    cursor.execute("DELETE FROM analytics_dailyaccountusage WHERE organization_id = %s AND date = %s", [org_id, day])
    cursor.execute(_ACCOUNT_SQL, [day, org_id, day])


# The day's (account, feature) pairs, from the account rows just written.
_DAY_PAIRS_SQL = """
SELECT account_id, feature_id FROM analytics_dailyaccountusage
WHERE organization_id = %s AND date = %s AND account_id IS NOT NULL AND feature_id IS NOT NULL
"""
# Clear the day's bit of the pairs without a row that day (their events vanished, or their
# users moved account before the re-roll), then set it for the day's pairs where it is not
# set yet. Pairs whose bit is already set are left out before the upsert (ON CONFLICT … WHERE
# false would still lock each of them), so re-rolling an unchanged day writes no row. Rows
# left empty are deleted.
_CLEAR_SQL = f"""
UPDATE analytics_accountfeatureactivedays SET active_days = active_days & ~CAST(%s AS BIGINT)
WHERE organization_id = %s AND block_start = %s AND (active_days & CAST(%s AS BIGINT)) <> 0
  AND (account_id, feature_id) NOT IN ({_DAY_PAIRS_SQL})
"""
_SET_SQL = """
INSERT INTO analytics_accountfeatureactivedays (organization_id, account_id, feature_id, block_start, active_days)
SELECT d.organization_id, d.account_id, d.feature_id, %s, CAST(%s AS BIGINT) FROM analytics_dailyaccountusage d
LEFT JOIN analytics_accountfeatureactivedays a
    ON a.organization_id = d.organization_id AND a.block_start = %s AND a.account_id = d.account_id
       AND a.feature_id = d.feature_id
WHERE d.organization_id = %s AND d.date = %s AND d.account_id IS NOT NULL AND d.feature_id IS NOT NULL
  AND (a.id IS NULL OR (a.active_days & CAST(%s AS BIGINT)) = 0)
ON CONFLICT (organization_id, block_start, account_id, feature_id) DO UPDATE
SET active_days = analytics_accountfeatureactivedays.active_days | EXCLUDED.active_days
WHERE (analytics_accountfeatureactivedays.active_days & EXCLUDED.active_days) = 0
"""
_EMPTY_SQL = """
DELETE FROM analytics_accountfeatureactivedays WHERE organization_id = %s AND block_start = %s AND active_days = 0
"""


def account_feature_days_roll(cursor: CursorWrapper, org_id: int, day: date) -> None:
    """Bring `day`'s bit of the organisation's per-account feature bitmasks in line with the
    day's account rows (after `account_rows_replace`, in the rollup's transaction). Under the
    organisation's bitmask lock, held to the end of the transaction: rolls of two days of one
    block would otherwise update the same rows in different orders."""
    bitmask_steps_lock(cursor, org_id)
    ops = connection.ops
    bit, block = day_bit(day), ops.adapt_datefield_value(block_of(day))
    day_param = ops.adapt_datefield_value(day)
    cursor.execute(_CLEAR_SQL, [bit, org_id, block, bit, org_id, day_param])
    cleared = cursor.rowcount
    # The day's account rows were written moments ago: on tables not analysed yet (a new
    # installation, a test database) the planner counted one and re-read the block's rows
    # once per row of the day, 0.97 s for 845 rows; hashed, ~1 ms (`active_days._HASHED`).
    with plans_without(cursor, "enable_nestloop"):
        cursor.execute(_SET_SQL, [block, bit, block, org_id, day_param, bit])
    if cleared:
        cursor.execute(_EMPTY_SQL, [org_id, block])
