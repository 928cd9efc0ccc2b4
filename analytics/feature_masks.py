"""Per-user weekly feature masks: which features an end user used in each week of an 8-week
block, as bits (`FeatureBit`) on the user's UserActiveDays row (`features_w0`…`features_w7`).

The distinct users of a set of features over a range (the feature breakdown's "other": the
users of the features outside its top ten) then read one row per user and block for the
range's whole weeks, and the per-user feature rows of its few edge days
(`queries.active.any_feature_users`), instead of one bitmask row per user, feature and
block: ~60,000 rows rather than ~930,000 over 30 days of the bench's 10 M events
(docs/benchmarks.md).

A feature gets a bit the first time a day with its events is rolled, before that day's
masks are written, so a mask names every feature with a bit the user used that week; bits
are never reused (a deleted feature's stays taken) and an organisation's features past the
63rd get none: a set of features with one of them is counted from the per-feature bitmask
rows, as before. A day's roll ORs its users' features into their week in the same write that
sets the day's bit (`day_masks`; the day's rows only add features to a week: one row
version per user and roll, where a second write had the rows of a 90-day backfill outgrow
their pages six times over, docs/benchmarks.md 2026-12-05), and recomputes the week from its
per-user feature rows when the roll deleted some of the day's (a feature gone from a user's day).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.db import connection

from .active_days import BLOCK_WEEKS, bitmask_steps_lock, block_of, week_of
from .planner import plans_without
from .temp_tables import on_postgres

# Bits 0..62: a mask of them all is a positive signed 64-bit integer.
MAX_FEATURE_BITS = 63
FEATURE_MASK_FIELDS = tuple(f"features_w{k}" for k in range(BLOCK_WEEKS))

# The organisation's features with rollup rows (of one day, `{of_day}`: "AND d.date = %s")
# and no bit, those first seen first. Parameters: the organisation (and the day).
_UNASSIGNED_SQL = """
SELECT d.feature_id FROM analytics_dailyfeatureusage d
WHERE d.organization_id = %s {of_day}
  AND NOT EXISTS (SELECT 1 FROM analytics_featurebit b WHERE b.feature_id = d.feature_id)
GROUP BY d.feature_id ORDER BY MIN(d.date), d.feature_id
"""


def _user_masks_sql() -> str:
    """Each end user's features (as bits) among the organisation's per-user feature rows of
    a span of days. PostgreSQL ORs the bits; SQLite, without BIT_OR, sums them over the
    distinct (user, bit) pairs, the same number. Parameters: the organisation, the first
    and the last day."""
    rows = """FROM analytics_dailyuserfeatureusage d JOIN analytics_featurebit b ON b.feature_id = d.feature_id
        WHERE d.organization_id = %s AND d.date >= %s AND d.date <= %s"""
    if on_postgres():
        return f"SELECT d.end_user_id, BIT_OR(CAST(1 AS BIGINT) << b.bit) AS mask {rows} GROUP BY d.end_user_id"
    return f"""SELECT end_user_id, SUM(1 << bit) AS mask FROM (SELECT DISTINCT d.end_user_id, b.bit {rows}) p
        GROUP BY end_user_id"""


# A week recomputed from its per-user feature rows, on the block's rows where it differs.
# Parameters: those of the masks, the organisation, the block.
_WEEK_SQL = """
UPDATE analytics_useractivedays SET {week} = s.mask
FROM (
    SELECT a.id, COALESCE(m.mask, 0) AS mask FROM analytics_useractivedays a
    LEFT JOIN ({masks}) m ON m.end_user_id = a.end_user_id
    WHERE a.organization_id = %s AND a.block_start = %s
) s
WHERE analytics_useractivedays.id = s.id AND analytics_useractivedays.{week} <> s.mask
"""


def feature_bits_assign(cursor: Any, org_id: int, day: date | None = None) -> None:
    """Give a bit to each feature of `day`'s rows (DailyFeatureUsage, written), or of any
    day's, that has none, while bits are left. Under the bitmask steps' lock, which a roll
    holds from its per-user bitmasks on (`active_days.rollup_active_days`): rolls of other
    days of the organisation take turns here."""
    bitmask_steps_lock(cursor, org_id)
    of_day = "" if day is None else "AND d.date = %s"
    params = [org_id] if day is None else [org_id, connection.ops.adapt_datefield_value(day)]
    cursor.execute(_UNASSIGNED_SQL.format(of_day=of_day), params)
    unassigned = [feature_id for (feature_id,) in cursor.fetchall()]
    if not unassigned:
        return
    # After the highest bit given, not the number given: a row removed by hand leaves a gap
    # that is never filled (old masks may still name its feature).
    cursor.execute("SELECT COALESCE(MAX(bit) + 1, 0) FROM analytics_featurebit WHERE organization_id = %s", [org_id])
    taken = cursor.fetchone()[0]
    rows = [
        (org_id, feature_id, bit) for bit, feature_id in enumerate(unassigned, start=taken) if bit < MAX_FEATURE_BITS
    ]
    if rows:
        cursor.executemany(
            "INSERT INTO analytics_featurebit (organization_id, feature_id, bit) VALUES (%s, %s, %s)", rows
        )


def day_masks(cursor: Any, org_id: int, day: date) -> tuple[str, str, list[Any]]:
    """What `active_days.rollup_active_days` needs to OR `day`'s features into its week in
    the write that sets the day's bit: the week's mask column, the SQL of each user's
    features among the day's per-user feature rows (final ones) and its parameters. The
    day's new features get their bits first. For a roll that inserted some of the day's
    per-user feature rows (a feature added to a user's day); one that only changed figures
    adds no feature, and the masks' join (~0.14 s of CPU on the 1 M-event day) is skipped."""
    feature_bits_assign(cursor, org_id, day)
    adapted = connection.ops.adapt_datefield_value(day)
    return FEATURE_MASK_FIELDS[week_of(day)], _user_masks_sql(), [org_id, adapted, adapted]


def rollup_feature_masks(cursor: Any, org_id: int, day: date, *, rows_deleted: bool) -> None:
    """Recompute the week of `day` in the organisation's feature masks from its per-user
    feature rows when the roll deleted some of the day's (`rows_deleted`: a week may name a
    feature a user no longer used); features added are ORed in by the bitmask write
    (`day_masks`). Once the day's per-user rows are final and `rollup_active_days` is done."""
    if not rows_deleted:
        return
    feature_bits_assign(cursor, org_id, day)
    block = block_of(day)
    week = week_of(day)
    first = block + timedelta(days=7 * week)
    _week_write(cursor, org_id, block, week, (first, first + timedelta(days=6)))


def feature_masks_rebuild(cursor: Any, org_id: int, blocks: list[date]) -> None:
    """Every week of `blocks` recomputed from the per-user feature rows, bits given first to
    the organisation's features with rows, oldest first (a repair, and the way existing
    rollups get their masks)."""
    feature_bits_assign(cursor, org_id)
    for block in blocks:
        for week in range(BLOCK_WEEKS):
            first = block + timedelta(days=7 * week)
            _week_write(cursor, org_id, block, week, (first, first + timedelta(days=6)))


def _week_write(cursor: Any, org_id: int, block: date, week: int, days: tuple[date, date]) -> None:
    ops = connection.ops
    sql = _WEEK_SQL.format(week=FEATURE_MASK_FIELDS[week], masks=_user_masks_sql())
    params = [org_id, *(ops.adapt_datefield_value(d) for d in days), org_id, ops.adapt_datefield_value(block)]
    # The day's rows were written in this transaction: hashed joins whatever the planner
    # believes of their number (as `active_days._HASHED`).
    with plans_without(cursor, "enable_nestloop"):
        cursor.execute(sql, params)


def weeks_split(start: date, end: date) -> tuple[dict[date, list[int]], list[date]]:
    """start..end as the whole weeks it holds ({block: [week of the block]}) and its other
    days (at most six at either end)."""
    whole: dict[date, list[int]] = {}
    edge_days: list[date] = []
    block = block_of(start)
    while block <= end:
        for week in range(BLOCK_WEEKS):
            first = block + timedelta(days=7 * week)
            last = first + timedelta(days=6)
            if last < start or first > end:
                continue
            if start <= first and last <= end:
                whole.setdefault(block, []).append(week)
            else:
                edge_days.extend(d for d in (first + timedelta(days=i) for i in range(7)) if start <= d <= end)
        block += timedelta(days=7 * BLOCK_WEEKS)
    return whole, edge_days
