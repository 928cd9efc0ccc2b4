"""Active-day bitmasks per end user and 8-week block (`UserActiveDays`): the block layout and
the rollup step that keeps them.

A block is BLOCK_DAYS (56) consecutive UTC days starting on a Monday, counted from
BLOCK_EPOCH; bit i of a row's `active_days` is day `block_start + i`. 56 bits fit a signed
64-bit integer on PostgreSQL and SQLite alike, and eight whole weeks per block mean a
Monday-based week always lies in one row, so weekly figures need no DISTINCT.

The rollup of a day sets or clears that day's bit alone: a bit is a pure function of "has
the user a DailyUserUsage row that day", so re-rolling a day (late or vanished events) is
exact and idempotent without reading the rest of the block. The per-feature bitmasks
(UserFeatureActiveDays) are kept the same way from the DailyUserFeatureUsage rows, the
per-event-type ones (UserEventTypeActiveDays) from the day's (user, event type) pairs.
A `UserActiveDays` row's events per week of the block (`WEEK_FIELDS`) are kept alike: the
rollup adds the change of the day's per-user events, the rows written minus those they
replaced, so re-rolling an unchanged day writes nothing and a re-rolled day counts once.
The bit and the week's events of a user change in one write (`rollup_active_days`): each
write leaves a dead row version behind, and a row is written on every active day of its
block (docs/decisions.md, 2026-12-01).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from django.db import connection

from .planner import plans_without
from .temp_tables import on_postgres, temp_table_create, temp_table_fill, temp_tables_release

BLOCK_DAYS = 56
# A Monday: every block starts on one.
BLOCK_EPOCH = date(1970, 1, 5)
ALL_DAYS = (1 << BLOCK_DAYS) - 1
BLOCK_WEEKS = BLOCK_DAYS // 7
# UserActiveDays' events per week of the block, week k in WEEK_FIELDS[k].
WEEK_FIELDS = tuple(f"events_w{k}" for k in range(BLOCK_WEEKS))


def block_of(day: date) -> date:
    """The first day of the block holding `day`."""
    return day - timedelta(days=(day - BLOCK_EPOCH).days % BLOCK_DAYS)


def day_bit(day: date) -> int:
    return 1 << (day - block_of(day)).days


def range_masks(start: date, end: date) -> dict[date, int]:
    """{block_start: bits of the days of start..end (inclusive) in that block}, for every
    block the range touches; empty when end < start."""
    masks: dict[date, int] = {}
    block = block_of(start)
    while block <= end:
        first = max(start, block)
        last = min(end, block + timedelta(days=BLOCK_DAYS - 1))
        masks[block] = ((1 << ((last - block).days + 1)) - 1) & ~((1 << (first - block).days) - 1)
        block += timedelta(days=BLOCK_DAYS)
    return masks


# Clear the day's bit of the users without a row that day (their events vanished); then, in
# one upsert, set it for the day's users where it is not set yet and add the change of each
# user's events to the day's week: the day's per-user rows just written minus those of the
# previous roll (kept aside before they were replaced), two index ranges of one row per
# user. Users whose bit is set and whose events did not change are left out before the
# upsert (ON CONFLICT … WHERE false would still lock each of them), so re-rolling an
# unchanged day writes no row and a first roll writes each of the day's users once. Rows left
# empty are deleted.
# `NOT IN` keeps the plan one hash of the day's users probed once per row whatever the
# estimates: the `NOT EXISTS` it replaces was planned as a nested loop re-reading the day's
# rows per bitmask row when the statistics said the day had none (a new day, rolled hourly
# before autoanalyze sees it): ~4 s of CPU on the bench's peak day (docs/benchmarks.md).
_CLEAR_SQL = """
UPDATE analytics_useractivedays SET active_days = active_days & ~CAST(%s AS BIGINT)
WHERE organization_id = %s AND block_start = %s AND (active_days & CAST(%s AS BIGINT)) <> 0
  AND end_user_id NOT IN (
    SELECT d.end_user_id FROM analytics_dailyuserusage d WHERE d.organization_id = %s AND d.date = %s)
"""
_OLD_TABLE = "rollup_day_users_before"
_KEEP_OLD_SQL = """
SELECT end_user_id, event_count FROM analytics_dailyuserusage WHERE organization_id = %s AND date = %s
"""
_CHANGE_SQL = f"""SELECT end_user_id, MAX(bit) AS bit, SUM(events) AS events FROM (
        SELECT end_user_id, event_count AS events, CAST(%s AS BIGINT) AS bit
        FROM analytics_dailyuserusage WHERE organization_id = %s AND date = %s
        UNION ALL
        SELECT end_user_id, -event_count, CAST(0 AS BIGINT) FROM {_OLD_TABLE}
    ) AS change GROUP BY end_user_id"""


def _set_sql(week: str, mask_field: str | None = None, masks_sql: str | None = None) -> str:
    """The upsert of the day's bit and its week's events; with `mask_field` and `masks_sql`
    (`feature_masks.day_masks`), the day's features ORed into the week's feature mask in
    the same write. Parameters: the organisation, the block, the day's bit, the organisation,
    the day, (the masks' parameters,) the organisation, the block."""
    insert = ["organization_id", "end_user_id", "block_start", "active_days", week]
    values = ["%s", "c.end_user_id", "%s", "c.bit", "c.events"]
    updates = [
        "active_days = analytics_useractivedays.active_days | excluded.active_days",
        f"{week} = analytics_useractivedays.{week} + excluded.{week}",
    ]
    masks_join = ""
    wanted = "c.events <> 0 OR (c.bit <> 0 AND (a.active_days IS NULL OR (a.active_days & c.bit) = 0))"
    if mask_field is not None:
        insert.append(mask_field)
        values.append("COALESCE(m.mask, 0)")
        updates.append(f"{mask_field} = analytics_useractivedays.{mask_field} | excluded.{mask_field}")
        masks_join = f"LEFT JOIN ({masks_sql}) m ON m.end_user_id = c.end_user_id"
        wanted += f" OR (m.mask IS NOT NULL AND (a.id IS NULL OR (a.{mask_field} & m.mask) <> m.mask))"
    return f"""
INSERT INTO analytics_useractivedays ({", ".join(insert)})
SELECT {", ".join(values)} FROM ({_CHANGE_SQL}) AS c
{masks_join}
LEFT JOIN analytics_useractivedays a
    ON a.organization_id = %s AND a.end_user_id = c.end_user_id AND a.block_start = %s
WHERE {wanted}
ON CONFLICT (organization_id, end_user_id, block_start) DO UPDATE SET {", ".join(updates)}
"""


_DROP_EMPTY_SQL = """
DELETE FROM analytics_useractivedays WHERE organization_id = %s AND block_start = %s AND active_days = 0
"""
# _HASHED: the joins of the day's per-user rows with the bitmask rows run with nested loops
# off (`planner.plans_without`). The day's rows are written in the same transaction, so the
# planner has no idea how many there are and, on tables it has not analysed yet (a new
# installation's first days), estimated one and planned a nested loop re-reading the
# block's rows for each of them: 12 s, then 52 s, for the first two days of a 20,000-user
# backfill (docs/benchmarks.md). Hash joins are linear whatever the estimates.
# _PROBED: the per-feature statements that look up a row's copies one index probe per row
# (`_EARLIER_ROW`) also run with sequential scans off. Planned while the table is near empty
# (a new installation's first days, organisations backfilled side by side), each probe was a
# sequential scan of the table, which the other rolls went on filling: one organisation's
# first day ran 15 minutes before it was cancelled, where it took 2.4 s with the probes on
# the unique index (docs/benchmarks.md).


def week_of(day: date) -> int:
    """The week of its block (0..BLOCK_WEEKS-1) `day` lies in."""
    return (day - block_of(day)).days // 7


def block_events_keep(cursor: Any, org_id: int, day: date) -> None:
    """Set aside `day`'s per-user events as they are before the rollup replaces them."""
    temp_table_fill(cursor, _OLD_TABLE, _KEEP_OLD_SQL, [org_id, connection.ops.adapt_datefield_value(day)])


def rollup_active_days(cursor: Any, org_id: int, day: date, *, masks: tuple[str, str, list[Any]] | None = None) -> None:
    """Bring `day`'s bit of the organisation's bitmasks in line with its DailyUserUsage rows
    and add the change of its per-user events to its week's totals; with `masks` (the
    week's feature mask column, the SQL of each user's features that day and its
    parameters: `feature_masks.day_masks`), OR the day's features into the week in the same
    write (one row version per user and roll, not two). Call once the day's DailyUserUsage
    rows are final (written, their stale rows deleted), after `block_events_keep`."""
    ops = connection.ops
    block = ops.adapt_datefield_value(block_of(day))
    bit = day_bit(day)
    day_param = ops.adapt_datefield_value(day)
    # The bitmask steps' lock before the first row of these is locked: the feature masks
    # (`feature_masks`) write the same rows under it later in the roll, and a roll of another
    # day holding some of them while waiting for the lock would deadlock with it.
    bitmask_steps_lock(cursor, org_id)
    cursor.execute(_CLEAR_SQL, [bit, org_id, block, bit, org_id, day_param])
    cleared = cursor.rowcount
    week = WEEK_FIELDS[week_of(day)]
    if masks is None:
        sql, mask_params = _set_sql(week), []
    else:
        mask_field, masks_sql, mask_params = masks
        sql = _set_sql(week, mask_field, masks_sql)
    with plans_without(cursor, "enable_nestloop"):  # see `_HASHED`
        cursor.execute(sql, [org_id, block, bit, org_id, day_param, *mask_params, org_id, block])
    temp_tables_release(cursor, _OLD_TABLE)
    if cleared:
        cursor.execute(_DROP_EMPTY_SQL, [org_id, block])


# The same three steps per (end user, feature), from the day's per-user feature rows.
_FEATURE_CLEAR_SQL = """
UPDATE analytics_userfeatureactivedays SET active_days = active_days & ~CAST(%s AS BIGINT)
WHERE organization_id = %s AND block_start = %s AND (active_days & CAST(%s AS BIGINT)) <> 0
  AND NOT EXISTS (
    SELECT 1 FROM analytics_dailyuserfeatureusage d
    WHERE d.organization_id = %s AND d.date = %s AND d.feature_id = analytics_userfeatureactivedays.feature_id
      AND d.end_user_id = analytics_userfeatureactivedays.end_user_id)
"""
# Rows whose bit is already set are left out before the upsert: ON CONFLICT … WHERE false
# would still lock (write) each of them, ~2.5 s of backend CPU on the 1 M-event day. The
# join with the block's rows runs with nested loops off (`_HASHED`). A new row copies the
# user's rows of the two blocks before (`earlier_days_1`, `_2`): one index probe each, made
# only where the block has no row yet (a row that exists keeps its copies: the upsert leaves
# them alone, and probing for it cost 2.8 s of the peak day's first roll).
_EARLIER_ROW = """(
    SELECT p.active_days FROM analytics_userfeatureactivedays p
    WHERE p.organization_id = {row}.organization_id AND p.feature_id = {row}.feature_id
      AND p.block_start = %s AND p.end_user_id = {row}.end_user_id)"""
_NEW_ROW_COPY = f"CASE WHEN a.id IS NULL THEN COALESCE({_EARLIER_ROW.format(row='d')}, 0) ELSE 0 END"
_FEATURE_SET_SQL = f"""
INSERT INTO analytics_userfeatureactivedays
    (organization_id, feature_id, end_user_id, block_start, active_days, earlier_days_1, earlier_days_2)
SELECT d.organization_id, d.feature_id, d.end_user_id, %s, CAST(%s AS BIGINT), {_NEW_ROW_COPY}, {_NEW_ROW_COPY}
FROM analytics_dailyuserfeatureusage d
LEFT JOIN analytics_userfeatureactivedays a
    ON a.organization_id = d.organization_id AND a.feature_id = d.feature_id AND a.block_start = %s
       AND a.end_user_id = d.end_user_id
WHERE d.organization_id = %s AND d.date = %s AND (a.id IS NULL OR (a.active_days & CAST(%s AS BIGINT)) = 0)
ON CONFLICT (organization_id, feature_id, block_start, end_user_id) DO UPDATE SET
    active_days = analytics_userfeatureactivedays.active_days | excluded.active_days
WHERE (analytics_userfeatureactivedays.active_days & excluded.active_days) = 0
"""
# A block's rows changed: the copies of them in the rows one (`earlier_days_1`) or two
# (`earlier_days_2`) blocks later are brought in line, rewriting only the rows that differ.
# Only a roll of a day before the newest block has such later rows. When the day only set
# bits, the rows to look at are its users' (`_OF_THE_DAY`); a bit cleared may be any row's.
_FEATURE_EARLIER_SQL = """
UPDATE analytics_userfeatureactivedays SET {column} = COALESCE({earlier}, 0)
WHERE organization_id = %s AND block_start = %s AND {column} <> COALESCE({earlier}, 0) {of_the_day}
"""
_OF_THE_DAY = """AND EXISTS (
    SELECT 1 FROM analytics_dailyuserfeatureusage d
    WHERE d.organization_id = %s AND d.date = %s AND d.feature_id = analytics_userfeatureactivedays.feature_id
      AND d.end_user_id = analytics_userfeatureactivedays.end_user_id)"""
_EARLIER_COLUMNS = {1: "earlier_days_1", 2: "earlier_days_2"}
_FEATURE_DROP_EMPTY_SQL = """
DELETE FROM analytics_userfeatureactivedays WHERE organization_id = %s AND block_start = %s AND active_days = 0
"""


def _feature_earlier_days_refresh(cursor: Any, org_id: int, day: date, *, any_row: bool) -> None:
    """Copy the organisation's per-feature bitmasks of `day`'s block into the rows of the two
    blocks after it (`earlier_days_1`, `earlier_days_2`) where they differ: those of the
    day's users and features, or with `any_row` every row of those blocks."""
    ops = connection.ops
    block = block_of(day)
    source = ops.adapt_datefield_value(block)
    earlier = _EARLIER_ROW.format(row="analytics_userfeatureactivedays")
    for blocks_later, column in _EARLIER_COLUMNS.items():
        later = ops.adapt_datefield_value(block + timedelta(days=BLOCK_DAYS * blocks_later))
        params = [source, org_id, later, source]
        of_the_day = ""
        if not any_row:
            of_the_day = _OF_THE_DAY
            params += [org_id, ops.adapt_datefield_value(day)]
        with plans_without(cursor, "enable_seqscan"):  # see `_PROBED`
            cursor.execute(_FEATURE_EARLIER_SQL.format(column=column, earlier=earlier, of_the_day=of_the_day), params)


def _rows_after(cursor: Any, org_id: int, block: date) -> bool:
    cursor.execute(
        "SELECT 1 FROM analytics_userfeatureactivedays WHERE organization_id = %s AND block_start > %s LIMIT 1",
        [org_id, connection.ops.adapt_datefield_value(block)],
    )
    return cursor.fetchone() is not None


# The two-key advisory lock space (apart from the one-key locks of days and partitions): the
# per-feature and per-event-type steps' key for one organisation.
_BITMASK_STEP_LOCK = 0x7E1E_0002


def bitmask_steps_lock(cursor: Any, org_id: int) -> None:
    """Hold, until the rollup's transaction ends, the organisation's lock on its per-feature
    and per-event-type bitmasks (PostgreSQL; taken again by the same transaction, it is
    simply held twice). Rolls of different days run side by side, and a row's copies of
    earlier blocks tie days together: a roll inserting a row in one block copies the earlier
    block as committed then, while a roll of that earlier block cannot see (and so cannot
    update) the uncommitted row. One at a time, each roll's statements see what the other
    committed."""
    if on_postgres():
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_BITMASK_STEP_LOCK, org_id])


def rollup_feature_active_days(cursor: Any, org_id: int, day: date, *, rows_deleted: bool, rows_inserted: bool) -> bool:
    """Bring `day`'s bit of the organisation's per-feature bitmasks in line with its
    DailyUserFeatureUsage rows (final ones, as for `rollup_active_days`). The bits equal the
    rows after every run, so a bit can only need clearing when this run deleted some of the
    day's rows (`rows_deleted`), and setting when it inserted some (`rows_inserted`):
    otherwise each step, a join of the day's rows with the whole block's (~0.5–1 s of CPU
    each on the 1 M-event day), is skipped, as on the nightly re-roll of a day rolled
    hourly. A day before the newest block that changed a bit updates the copies of its
    block in the rows of the two blocks after it. Returns whether a bit changed."""
    ops = connection.ops
    first_day = block_of(day)
    block = ops.adapt_datefield_value(first_day)
    bit = day_bit(day)
    day_param = ops.adapt_datefield_value(day)
    earlier = [ops.adapt_datefield_value(first_day - timedelta(days=BLOCK_DAYS * k)) for k in (1, 2)]
    cleared = changed = 0
    bitmask_steps_lock(cursor, org_id)
    if rows_deleted:
        with plans_without(cursor, "enable_nestloop"):  # see `_HASHED`
            cursor.execute(_FEATURE_CLEAR_SQL, [bit, org_id, block, bit, org_id, day_param])
            changed = cleared = cursor.rowcount
    if rows_inserted:
        with plans_without(cursor, "enable_nestloop", "enable_seqscan"):  # see `_HASHED`, `_PROBED`
            cursor.execute(_FEATURE_SET_SQL, [block, bit, earlier[0], earlier[1], block, org_id, day_param, bit])
            changed += cursor.rowcount
    if cleared:
        cursor.execute(_FEATURE_DROP_EMPTY_SQL, [org_id, block])
    if changed and _rows_after(cursor, org_id, first_day):
        _feature_earlier_days_refresh(cursor, org_id, day, any_row=bool(cleared))
    return bool(changed)


# The same steps per (end user, event type), from the day's distinct (user, type) pairs (the
# event dimensions' per-user groups, `rollup_dimensions.event_dimensions_build`), put aside in
# _EVENT_TYPE_PAIRS (a column of the table's own collation, so the joins below compare like
# with like).
_EVENT_TYPE_PAIRS = "uetad_pairs"
_EVENT_TYPE_CLEAR_SQL = f"""
UPDATE analytics_usereventtypeactivedays SET active_days = active_days & ~CAST(%s AS BIGINT)
WHERE organization_id = %s AND block_start = %s AND (active_days & CAST(%s AS BIGINT)) <> 0
  AND NOT EXISTS (
    SELECT 1 FROM {_EVENT_TYPE_PAIRS} p
    WHERE p.end_user_id = analytics_usereventtypeactivedays.end_user_id
      AND p.event_type = analytics_usereventtypeactivedays.event_type)
"""
_EVENT_TYPE_SET_SQL = f"""
INSERT INTO analytics_usereventtypeactivedays (organization_id, end_user_id, event_type, block_start, active_days)
SELECT %s, p.end_user_id, p.event_type, %s, CAST(%s AS BIGINT) FROM {_EVENT_TYPE_PAIRS} p
WHERE NOT EXISTS (
    SELECT 1 FROM analytics_usereventtypeactivedays a
    WHERE a.organization_id = %s AND a.block_start = %s AND a.event_type = p.event_type
      AND a.end_user_id = p.end_user_id AND (a.active_days & CAST(%s AS BIGINT)) <> 0)
ON CONFLICT (organization_id, block_start, event_type, end_user_id) DO UPDATE SET
    active_days = analytics_usereventtypeactivedays.active_days | excluded.active_days
"""
_EVENT_TYPE_DROP_EMPTY_SQL = """
DELETE FROM analytics_usereventtypeactivedays WHERE organization_id = %s AND block_start = %s AND active_days = 0
"""


def rollup_event_type_active_days(cursor: Any, org_id: int, day: date, *, pairs: Sequence[tuple[int, str]]) -> bool:
    """Bring `day`'s bit of the organisation's per-event-type bitmasks in line with the day's
    distinct (end user, event type) `pairs`: clear it where a pair vanished, set it where it
    is not set yet (a pair already set is not written), drop rows left empty. Under the
    organisation's lock, as the per-feature step: two rolls of one block side by side would
    otherwise lock the same rows in their own orders, and could deadlock. Returns whether a
    bit changed (the later days' recency rows per event type may then have)."""
    ops = connection.ops
    block = ops.adapt_datefield_value(block_of(day))
    bit = day_bit(day)
    bitmask_steps_lock(cursor, org_id)
    temp_table_create(cursor, _EVENT_TYPE_PAIRS, "end_user_id BIGINT, event_type VARCHAR(64)")
    if on_postgres():
        # One statement for tens of thousands of pairs: two arrays, unnested together.
        cursor.execute(
            f"INSERT INTO {_EVENT_TYPE_PAIRS} (end_user_id, event_type) SELECT * FROM unnest(%s::bigint[], %s::text[])",
            [[user for user, _type in pairs], [event_type for _user, event_type in pairs]],
        )
        cursor.execute(f"ANALYZE {_EVENT_TYPE_PAIRS}")
    else:
        cursor.executemany(f"INSERT INTO {_EVENT_TYPE_PAIRS} (end_user_id, event_type) VALUES (%s, %s)", pairs)
    with plans_without(cursor, "enable_nestloop"):  # see `_HASHED`
        cursor.execute(_EVENT_TYPE_CLEAR_SQL, [bit, org_id, block, bit])
        cleared = cursor.rowcount
        cursor.execute(_EVENT_TYPE_SET_SQL, [org_id, block, bit, org_id, block, bit])
        set_now = cursor.rowcount
    if cleared:
        cursor.execute(_EVENT_TYPE_DROP_EMPTY_SQL, [org_id, block])
    temp_tables_release(cursor, _EVENT_TYPE_PAIRS)
    return bool(cleared or set_now)
