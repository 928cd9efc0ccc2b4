"""The day's dimension rollup (DailyDimensionUsage): events, daily active users and session
time per value of `event_type`, of the busiest event properties and of the busiest end-user
properties, per person segment, for all features and per feature — so that breakdowns by
those dimensions never read raw events.

In two halves, each a few statements over temporary tables, all in the database:
- the event dimensions (`event_dimensions_build`) read only the day's events and the
  organisation's end users, so on PostgreSQL `rollup_day` runs them on a second connection
  beside its other steps (`side_lane`), committed on their own;
- the user properties (`user_dimensions_build`) read the day's per-user rows, inside
  `rollup_day`'s transaction once those are final.

1. users with their class (`ddu_u`, `ddu_cls`), so that later steps hash a small integer,
   not a segment: for the events, every end user of the organisation, one class per (age
   band, gender); for the user properties, the day's users, one class per distinct (age
   band, gender, properties);
2. one pass over the day's events grouped twice (`ddu_g`, GROUPING SETS on PostgreSQL):
   per (feature, class, event type, metadata) and per (end user, class, event type,
   metadata) — both far fewer rows than events; every event dimension is read from those,
   each chosen property's value (or "(none)" where an event lacks it or has it empty)
   taken per group;
3. the caps, so hostile cardinality cannot blow the table up: at most MAX_EVENT_KEYS event
   properties and MAX_USER_KEYS user properties per organisation and day (those on most
   events or active users, and only names a breakdown can ask for); per dimension the
   MAX_VALUES values with most events are kept and the rest folded into the value ""
   (shown as "other");
4. per feature and segment: events and session time per value (`ddu_stage`; users and
   sessions too for user properties, from the day's per-user feature rows summed per
   (feature, class), each end user's profile as it is at rollup time, as the person
   segments take age and gender);
5. for all features, with distinct daily users: an event dimension per (user, value) from
   the per-user groups, a user property straight from the per-user rows (one value per user);
6. marker dimensions (`event.*`, `user.*`) with the day's totals as "(none)", which the
   queries read on days without a row of the asked property (a key past the cap that day
   reads as "(none)" too); then every row of the day summed over the segments (age band and
   gender ALL_SEGMENTS), which the reads without an age or gender filter take;
7. the day's distinct (end user, event type) pairs from the per-user groups of step 2, which
   `rollup_day` sets the day's bit of the per-(user, event type) bitmasks from
   (UserEventTypeActiveDays, `active_days.rollup_event_type_active_days`).

Cost: one more scan of the day's events (a hash join on the users and two hash groupings),
one of the day's per-user feature rows, and groupings of rows far fewer than events;
measured in docs/benchmarks.md (dim-speed; "The event dimensions on a second connection")."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.db import connection

from .active_days import rollup_event_type_active_days
from .planner import plans_without
from .rollup_dimensions_sql import (
    ALL_SEGMENTS_SQL,
    CLASSES_SQL,
    EVENTS_MARK,
    MAX_EVENT_KEYS,
    MAX_USER_KEYS,
    PER_USER,
    SEGMENT_COLUMNS,
    SEGMENT_USERS_SQL,
    TEMP_TABLES,
    TOP_SQL,
    USER_DIMENSIONS,
    USERS_MARK,
    USERS_SQL,
    event_keys_sql,
    grouped_sqls,
    insert_sqls,
    stage_sqls,
    user_keys_sql,
)
from .temp_tables import on_postgres, temp_table_create, temp_table_fill, temp_tables_release

# What a breakdown can name (analytics.filters.property_check): other keys are never asked.
_NAME_RE = re.compile(r"[A-Za-z0-9_$\-.]{1,100}")


def _chosen(candidates: list[tuple[str, Any]], limit: int) -> list[str]:
    names = [str(name) for name, _count in candidates]
    return [name for name in names if _NAME_RE.fullmatch(name) and ".." not in name][:limit]


def dimensions_day_build(cursor: Any, *, org_id: int, day: date, window: list[Any]) -> bool:
    """Both halves of `day`'s dimension rollup in one go, and the day's bits of the
    per-event-type bitmasks: `event_dimensions_build`, then
    `active_days.rollup_event_type_active_days` and `user_dimensions_build` (see those).
    Returns whether a bit of the per-event-type bitmasks changed."""
    pairs = event_dimensions_build(cursor, org_id=org_id, day=day, window=window)
    changed = rollup_event_type_active_days(cursor, org_id, day, pairs=pairs)
    user_dimensions_build(cursor, org_id=org_id, day=day)
    return changed


def event_dimensions_build(cursor: Any, *, org_id: int, day: date, window: list[Any]) -> list[tuple[int, str]]:
    """Replace `day`'s DailyDimensionUsage rows of `org_id` for the event dimensions
    (`event_type`, event properties, `event.*`; see the module docstring). Reads only the
    day's events and the organisation's end users and writes only those rows, each day's
    whole, so it can run beside the rest of the rollup on a connection and in a transaction
    of its own (`rollup.rollup_day`). `cursor`: inside a transaction; `window`: the day's
    [start, end) as adapted timestamps. Returns the day's distinct (end user, event type)
    pairs, which the per-event-type bitmasks take (`active_days`, in the rollup's own
    transaction, as the other bitmasks) rather than another pass over the events."""
    day_param = connection.ops.adapt_datefield_value(day)
    _half_clear(cursor, org_id, day_param, of_users=False)
    _classes_build(cursor, SEGMENT_USERS_SQL, [org_id])
    text, json = _column_types()
    with plans_without(cursor, "enable_sort", "enable_mergejoin"):  # see `_classes_build`
        temp_table_create(
            cursor,
            "ddu_g",
            f"kind SMALLINT, feature_id BIGINT, uid BIGINT, cls BIGINT, event_type {text}, "
            f"metadata {json}, events BIGINT, duration DOUBLE PRECISION, timed BIGINT",
        )
        for sql in grouped_sqls():
            cursor.execute(sql, [org_id, *window])
        cursor.execute(event_keys_sql())
        event_keys = _chosen(cursor.fetchall(), MAX_EVENT_KEYS)
        keys = [("event", EVENTS_MARK, ""), ("event", "event_type", "")]
        keys += [("event", f"event.{name}", name) for name in event_keys]
        event_stage, _user_stage = stage_sqls()
        _half_rows(cursor, org_id, day_param, of_users=False, keys=keys, stage=(event_stage, []))
        # Anonymous groups (user 0) carry no user.
        cursor.execute("SELECT DISTINCT uid, event_type FROM ddu_g WHERE kind = %s AND uid <> 0", [PER_USER])
        pairs = [(uid, event_type) for uid, event_type in cursor.fetchall()]
    temp_tables_release(cursor, *TEMP_TABLES)
    return pairs


def user_dimensions_build(cursor: Any, *, org_id: int, day: date) -> None:
    """Replace `day`'s DailyDimensionUsage rows of `org_id` for the user properties
    (`user.*` and each chosen property), from the day's per-user rows: run inside
    `rollup_day`'s transaction after those are final."""
    day_param = connection.ops.adapt_datefield_value(day)
    _half_clear(cursor, org_id, day_param, of_users=True)
    _classes_build(cursor, USERS_SQL, [org_id, day_param])
    with plans_without(cursor, "enable_sort", "enable_mergejoin"):  # see `_classes_build`
        cursor.execute(user_keys_sql(), [org_id, day_param])
        user_keys = _chosen(cursor.fetchall(), MAX_USER_KEYS)
        keys = [("user", USERS_MARK, "")]
        keys += [("user", f"user.{name}", name) for name in user_keys]
        _event_stage, user_stage = stage_sqls()
        _half_rows(cursor, org_id, day_param, of_users=True, keys=keys, stage=(user_stage, [org_id, day_param]))
    temp_tables_release(cursor, *(name for name in TEMP_TABLES if name != "ddu_g"))


def _half_like(of_users: bool) -> str:
    """How a half's dimensions are told from the other's: the user properties' names all
    start with "user.", the event dimensions' (event_type, event.*) never do."""
    return "LIKE" if of_users else "NOT LIKE"


def _half_clear(cursor: Any, org_id: int, day_param: Any, *, of_users: bool) -> None:
    """Delete the day's rows of one half, its sums over the segments included."""
    cursor.execute(
        "DELETE FROM analytics_dailydimensionusage WHERE organization_id = %s AND date = %s"
        f" AND dimension {_half_like(of_users)} %s",
        [org_id, day_param, USER_DIMENSIONS],
    )


def _half_rows(
    cursor: Any,
    org_id: int,
    day_param: Any,
    *,
    of_users: bool,
    keys: list[tuple[str, str, str]],
    stage: tuple[str, list[Any]],
) -> None:
    """One half's rows of the day, its dimensions `keys`: staged (`stage`: the statement and
    its parameters), capped, written per feature and for all features, then summed over the
    segments."""
    text, _json = _column_types()
    _keys_and_stage(cursor, keys, text)
    cursor.execute(*stage)
    temp_table_fill(cursor, "ddu_top", TOP_SQL)
    per_feature, event_all, user_all = insert_sqls()
    cursor.execute(per_feature, [org_id, day_param])
    if of_users:
        cursor.execute(user_all, [org_id, day_param, org_id, day_param])
    else:
        cursor.execute(event_all, [org_id, day_param])
    cursor.execute(ALL_SEGMENTS_SQL.format(like=_half_like(of_users)), [org_id, day_param, USER_DIMENSIONS])


def _column_types() -> tuple[str, str]:
    """The temporary tables' text and JSON types. Text is compared byte-wise on PostgreSQL:
    the groupings and joins sort no collated text."""
    if on_postgres():
        return 'TEXT COLLATE "C"', "JSONB"
    return "TEXT", "TEXT"


def _classes_build(cursor: Any, users_sql: str, params: list[Any]) -> None:
    """`ddu_u` from `users_sql` and its distinct classes (`ddu_cls`). The groupings after
    this have far fewer groups than rows, which the planner cannot tell from their keys
    (temporary tables have no statistics): left to itself it sorts millions of rows on a
    big day, so the callers plan them without sorts."""
    _text, json = _column_types()
    temp_table_create(cursor, "ddu_u", f"uid BIGINT PRIMARY KEY, cls BIGINT, {SEGMENT_COLUMNS}, properties {json}")
    cursor.execute(users_sql, params)
    temp_table_create(cursor, "ddu_cls", f"cls BIGINT, {SEGMENT_COLUMNS}, properties {json}")
    cursor.execute(CLASSES_SQL)
    if on_postgres():
        # The users are the side the events pass hashes: its estimate must say so.
        cursor.execute("ANALYZE ddu_u")


def _keys_and_stage(cursor: Any, keys: list[tuple[str, str, str]], text: str) -> None:
    """The dimensions of this half (`ddu_keys`) and an empty `ddu_stage`."""
    temp_table_create(cursor, "ddu_keys", f"kind VARCHAR(5), dim {text}, name TEXT")
    cursor.executemany("INSERT INTO ddu_keys (kind, dim, name) VALUES (%s, %s, %s)", keys)
    temp_table_create(
        cursor,
        "ddu_stage",
        f"feature_id BIGINT, age_band VARCHAR(5), gender VARCHAR(1), dim {text}, "
        f"val {text}, events BIGINT, users BIGINT, sessions BIGINT, duration DOUBLE PRECISION, timed BIGINT",
    )
