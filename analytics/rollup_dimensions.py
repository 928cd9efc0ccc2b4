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
from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .planner import plans_without
from .temp_tables import on_postgres, temp_table_create, temp_table_fill, temp_tables_release

MAX_EVENT_KEYS = 10
MAX_USER_KEYS = 10
MAX_VALUES = 50
# What a breakdown can name (analytics.filters.property_check): other keys are never asked.
_NAME_RE = re.compile(r"[A-Za-z0-9_$\-.]{1,100}")
# Candidate keys read before the name check and the cap.
_KEY_CANDIDATES = 200
NONE = "(none)"
FOLDED = ""
# Marker dimensions, all "(none)": every event, and every user's events, of the day. A
# property with no row on a day (no event or profile of the day has it) is all "(none)"
# that day: the queries read these rows for such days.
EVENTS_MARK = "event.*"
USERS_MARK = "user.*"
# The age band and gender of the rows summed over every segment: what a read without an age
# or gender filter takes, a tenth of the segments' rows (`queries.filters.dimension_segment`).
ALL_SEGMENTS = "*"

_SEGMENT = f"{AGE_BAND_SQL} AS age_band, {GENDER_SQL} AS gender"
# The segment columns of the temporary tables.
_SEGMENT_COLUMNS = "age_band VARCHAR(5), gender VARCHAR(1)"
# The segment of a profile class (`ddu_cls`), '' for an anonymous event (no class).
_CLASS_SEGMENT = "COALESCE(c.age_band, ''), COALESCE(c.gender, '')"


def _prop(column: str) -> str:
    """SQL for the text of property `k.name` of a JSON column, NULL when absent: PostgreSQL's
    `->>`, which SQLite is made to match (its json_extract gives 1 and 0 for true and false;
    the ORM's key transforms, which the filters use, say 'true' and 'false' too)."""
    if on_postgres():
        return f"({column} ->> k.name)"
    path = """'$."' || k.name || '"'"""
    return (
        f"(CASE WHEN json_type({column}, {path}) IN ('true', 'false') THEN json_type({column}, {path})"
        f" ELSE CAST(json_extract({column}, {path}) AS TEXT) END)"
    )


def _or_none(expr: str) -> str:
    return f"COALESCE(NULLIF({expr}, ''), '{NONE}')"


# The day's events in one pass, grouped twice (both far fewer rows than events): per
# (feature, segment, event type, metadata) — the per-feature event dimensions — and per
# (end user, event type, metadata) — the all-features ones, with distinct users. Grouping
# (feature, end user, …) at once would keep nearly a row per event on a big day.
# The end user's profile class (`ddu_u`) stands for the segment: a small integer to hash
# per event rather than the age band and gender (NULL for anonymous events).
_EVENTS_FROM = """
SELECT {kind}, e.feature_id, COALESCE(e.end_user_id, 0), x.cls, e.event_type, {metadata}, COUNT(*),
       COALESCE(SUM(e.session_duration), 0), COUNT(e.session_duration)
FROM telemetry_usageevent e LEFT JOIN ddu_u x ON x.uid = e.end_user_id
WHERE e.organization_id = %s AND e.timestamp >= %s AND e.timestamp < %s
"""
_PER_FEATURE_KEY = "e.feature_id, x.cls, e.event_type, {metadata}"
_PER_USER_KEY = "COALESCE(e.end_user_id, 0), x.cls, e.event_type, {metadata}"
_EVENTS_INTO = "INSERT INTO ddu_g (kind, feature_id, uid, cls, event_type, metadata, events, duration, timed)"
PER_FEATURE, PER_USER = 0, 1


def _grouped_sqls() -> list[str]:
    """`ddu_g`: kind PER_FEATURE rows (uid unset) and PER_USER rows (feature unset)."""
    if on_postgres():
        # One scan and one join for both groupings; GROUPING() is 1 where feature_id is not
        # a key, i.e. on the per-user rows. Metadata is hashed as its text (jsonb prints
        # canonically, so equal objects have equal text): a third of the pass's cost.
        metadata = "e.metadata::text"
        per_feature, per_user = _PER_FEATURE_KEY.format(metadata=metadata), _PER_USER_KEY.format(metadata=metadata)
        select = _EVENTS_FROM.format(kind="GROUPING(e.feature_id)", metadata=f"({metadata})::jsonb")
        return [f"{_EVENTS_INTO}{select} GROUP BY GROUPING SETS (({per_feature}), ({per_user}))"]
    # SQLite has no GROUPING SETS (and only embedded-sized days).
    metadata = "e.metadata"
    return [
        f"{_EVENTS_INTO}{_EVENTS_FROM.format(kind=kind, metadata=metadata)} GROUP BY {key.format(metadata=metadata)}"
        for kind, key in ((PER_FEATURE, _PER_FEATURE_KEY), (PER_USER, _PER_USER_KEY))
    ]


def _event_keys_sql() -> str:
    if on_postgres():
        keys = "jsonb_object_keys(CASE WHEN jsonb_typeof(g.metadata) = 'object' THEN g.metadata ELSE '{}' END) p"
        key = "p"
    else:
        keys = "json_each(CASE WHEN json_type(g.metadata) = 'object' THEN g.metadata ELSE '{}' END) p"
        key = "p.key"
    return f"""
SELECT {key}, SUM(g.events) FROM ddu_g g, {keys}
WHERE g.kind = {PER_USER}
GROUP BY {key} ORDER BY SUM(g.events) DESC, {key} LIMIT {_KEY_CANDIDATES}
"""


def _user_keys_sql() -> str:
    if on_postgres():
        keys = "jsonb_object_keys(CASE WHEN jsonb_typeof(u.properties) = 'object' THEN u.properties ELSE '{}' END) p"
        key = "p"
    else:
        keys = "json_each(CASE WHEN json_type(u.properties) = 'object' THEN u.properties ELSE '{}' END) p"
        key = "p.key"
    return f"""
SELECT {key}, COUNT(*) FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id, {keys}
WHERE r.organization_id = %s AND r.date = %s
GROUP BY {key} ORDER BY COUNT(*) DESC, {key} LIMIT {_KEY_CANDIDATES}
"""


def _event_value() -> str:
    return f"""CASE WHEN k.dim = 'event_type' THEN {_or_none("g.event_type")}
        WHEN k.dim = '{EVENTS_MARK}' THEN '{NONE}' ELSE {_or_none(_prop("g.metadata"))} END"""


def _user_value(properties: str = "u.properties") -> str:
    return f"CASE WHEN k.dim = '{USERS_MARK}' THEN '{NONE}' ELSE {_or_none(_prop(properties))} END"


_STAGE_COLUMNS = (
    "INSERT INTO ddu_stage (feature_id, age_band, gender, dim, val, events, users, sessions, duration, timed)"
)


def _stage_sqls() -> list[str]:
    """The per-feature rows before the value cap: events and session time per segment and
    value (users for user properties, one value per user; none for event dimensions)."""
    event_value, user_value = _event_value(), _user_value("c.properties")
    return [
        f"""{_STAGE_COLUMNS}
SELECT g.feature_id, {_CLASS_SEGMENT}, k.dim, {event_value}, SUM(g.events), 0, 0, SUM(g.duration), SUM(g.timed)
FROM ddu_g g LEFT JOIN ddu_cls c ON c.cls = g.cls CROSS JOIN ddu_keys k
WHERE g.kind = {PER_FEATURE} AND k.kind = 'event'
GROUP BY g.feature_id, {_CLASS_SEGMENT}, k.dim, {event_value}""",
        # The per-user feature rows summed per (feature, profile class) first: the keys
        # then multiply those sums, not every (user, feature) row.
        f"""{_STAGE_COLUMNS}
SELECT f.feature_id, c.age_band, c.gender, k.dim, {user_value}, SUM(f.events), SUM(f.users), SUM(f.sessions),
       SUM(f.duration), SUM(f.timed)
FROM (
    SELECT r.feature_id, x.cls, SUM(r.event_count) AS events, COUNT(*) AS users, SUM(r.sessions) AS sessions,
           SUM(r.total_session_duration) AS duration, SUM(r.timed_events) AS timed
    FROM analytics_dailyuserfeatureusage r JOIN ddu_u x ON x.uid = r.end_user_id
    WHERE r.organization_id = %s AND r.date = %s
    GROUP BY r.feature_id, x.cls
) f JOIN ddu_cls c ON c.cls = f.cls CROSS JOIN ddu_keys k
WHERE k.kind = 'user'
GROUP BY f.feature_id, c.age_band, c.gender, k.dim, {user_value}""",
    ]


# The day's users with their profile class: one per distinct (age band, gender, properties),
# far fewer than users where properties repeat.
_USERS_SQL = f"""
INSERT INTO ddu_u (uid, cls, age_band, gender, properties)
SELECT r.end_user_id, DENSE_RANK() OVER (ORDER BY {AGE_BAND_SQL}, {GENDER_SQL}, u.properties),
       {_SEGMENT}, u.properties
FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
WHERE r.organization_id = %s AND r.date = %s
"""
_CLASSES_SQL = """
INSERT INTO ddu_cls (cls, age_band, gender, properties)
SELECT DISTINCT cls, age_band, gender, properties FROM ddu_u
"""


# The MAX_VALUES values of each dimension with most events, over all features.
_TOP_SQL = f"""
SELECT dim, val FROM (
    SELECT dim, val, ROW_NUMBER() OVER (PARTITION BY dim ORDER BY SUM(events) DESC, val) AS n
    FROM ddu_stage GROUP BY dim, val
) ranked WHERE n <= {MAX_VALUES}
"""

_COLUMNS = """INSERT INTO analytics_dailydimensionusage (
    organization_id, date, feature_id, dimension, value, age_band, gender, event_count, active_users, sessions,
    total_session_duration, timed_events)"""
_KEPT = f"COALESCE(t.val, '{FOLDED}')"


def _insert_sqls() -> list[str]:
    """Per feature: the stage rows with the cap applied. For all features, distinct users:
    an event dimension's per (user, dimension, kept value) first — a user with several
    values folded into "other" counts once there — then per segment; a user property's
    straight from the per-user rows (one value per user)."""
    event_value, user_value = _event_value(), _user_value()
    return [
        f"""{_COLUMNS}
SELECT %s, %s, s.feature_id, s.dim, {_KEPT}, s.age_band, s.gender, SUM(s.events), SUM(s.users), SUM(s.sessions),
       SUM(s.duration), SUM(s.timed)
FROM ddu_stage s LEFT JOIN ddu_top t ON t.dim = s.dim AND t.val = s.val
GROUP BY s.feature_id, s.dim, {_KEPT}, s.age_band, s.gender""",
        f"""{_COLUMNS}
SELECT %s, %s, NULL, v.dim, v.val, {_CLASS_SEGMENT}, SUM(v.events), COUNT(NULLIF(v.uid, 0)), 0,
       SUM(v.duration), SUM(v.timed)
FROM (
    SELECT g.uid, g.cls, k.dim, {_KEPT} AS val, SUM(g.events) AS events,
           SUM(g.duration) AS duration, SUM(g.timed) AS timed
    FROM ddu_g g CROSS JOIN ddu_keys k LEFT JOIN ddu_top t ON t.dim = k.dim AND t.val = {event_value}
    WHERE g.kind = {PER_USER} AND k.kind = 'event'
    GROUP BY g.uid, g.cls, k.dim, {_KEPT}
) v LEFT JOIN ddu_cls c ON c.cls = v.cls
GROUP BY v.dim, v.val, {_CLASS_SEGMENT}""",
        f"""{_COLUMNS}
SELECT %s, %s, NULL, k.dim, {_KEPT}, {AGE_BAND_SQL}, {GENDER_SQL}, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id CROSS JOIN ddu_keys k
LEFT JOIN ddu_top t ON t.dim = k.dim AND t.val = {user_value}
WHERE r.organization_id = %s AND r.date = %s AND k.kind = 'user'
GROUP BY k.dim, {_KEPT}, {AGE_BAND_SQL}, {GENDER_SQL}""",
    ]


_TEMP_TABLES = ("ddu_g", "ddu_u", "ddu_cls", "ddu_stage", "ddu_keys", "ddu_top")

# Each row of the day summed over the segments (age band and gender ALL_SEGMENTS): exact for
# distinct users too, as every user is in one segment. Parameters: the organisation, the day,
# the dimensions' LIKE pattern.
_ALL_SEGMENTS_SQL = f"""{_COLUMNS}
SELECT organization_id, date, feature_id, dimension, value, '{ALL_SEGMENTS}', '{ALL_SEGMENTS}', SUM(event_count),
       SUM(active_users), SUM(sessions), SUM(total_session_duration), SUM(timed_events)
FROM analytics_dailydimensionusage
WHERE organization_id = %s AND date = %s AND dimension {{like}} %s AND age_band <> '{ALL_SEGMENTS}'
GROUP BY organization_id, date, feature_id, dimension, value
"""


def _chosen(candidates: list[tuple[str, Any]], limit: int) -> list[str]:
    names = [str(name) for name, _count in candidates]
    return [name for name in names if _NAME_RE.fullmatch(name) and ".." not in name][:limit]


# The day's end users of the organisation with their segment class, for the event
# dimensions: one class per (age band, gender), all the organisation's users (an index range
# of its end users), as the events pass runs beside the per-user rows, before they exist
# (`rollup.rollup_day`); a user without an event that day joins no event.
_SEGMENT_USERS_SQL = f"""
INSERT INTO ddu_u (uid, cls, age_band, gender, properties)
SELECT u.id, DENSE_RANK() OVER (ORDER BY {AGE_BAND_SQL}, {GENDER_SQL}), {_SEGMENT}, NULL
FROM telemetry_enduser u WHERE u.organization_id = %s
"""
# The user dimensions' names all start so; the event dimensions' (event_type, event.*) never do.
_USER_DIMENSIONS = "user.%"


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
    _classes_build(cursor, _SEGMENT_USERS_SQL, [org_id])
    text, json = _column_types()
    with plans_without(cursor, "enable_sort", "enable_mergejoin"):  # see `_classes_build`
        temp_table_create(
            cursor,
            "ddu_g",
            f"kind SMALLINT, feature_id BIGINT, uid BIGINT, cls BIGINT, event_type {text}, "
            f"metadata {json}, events BIGINT, duration DOUBLE PRECISION, timed BIGINT",
        )
        for sql in _grouped_sqls():
            cursor.execute(sql, [org_id, *window])
        cursor.execute(_event_keys_sql())
        event_keys = _chosen(cursor.fetchall(), MAX_EVENT_KEYS)
        keys = [("event", EVENTS_MARK, ""), ("event", "event_type", "")]
        keys += [("event", f"event.{name}", name) for name in event_keys]
        event_stage, _user_stage = _stage_sqls()
        _half_rows(cursor, org_id, day_param, of_users=False, keys=keys, stage=(event_stage, []))
        # Anonymous groups (user 0) carry no user.
        cursor.execute("SELECT DISTINCT uid, event_type FROM ddu_g WHERE kind = %s AND uid <> 0", [PER_USER])
        pairs = [(uid, event_type) for uid, event_type in cursor.fetchall()]
    temp_tables_release(cursor, *_TEMP_TABLES)
    return pairs


def user_dimensions_build(cursor: Any, *, org_id: int, day: date) -> None:
    """Replace `day`'s DailyDimensionUsage rows of `org_id` for the user properties
    (`user.*` and each chosen property), from the day's per-user rows: run inside
    `rollup_day`'s transaction after those are final."""
    day_param = connection.ops.adapt_datefield_value(day)
    _half_clear(cursor, org_id, day_param, of_users=True)
    _classes_build(cursor, _USERS_SQL, [org_id, day_param])
    with plans_without(cursor, "enable_sort", "enable_mergejoin"):  # see `_classes_build`
        cursor.execute(_user_keys_sql(), [org_id, day_param])
        user_keys = _chosen(cursor.fetchall(), MAX_USER_KEYS)
        keys = [("user", USERS_MARK, "")]
        keys += [("user", f"user.{name}", name) for name in user_keys]
        _event_stage, user_stage = _stage_sqls()
        _half_rows(cursor, org_id, day_param, of_users=True, keys=keys, stage=(user_stage, [org_id, day_param]))
    temp_tables_release(cursor, *(name for name in _TEMP_TABLES if name != "ddu_g"))


def _half_like(of_users: bool) -> str:
    """How a half's dimensions are told from the other's: the user properties' names all
    start with "user.", the event dimensions' (event_type, event.*) never do."""
    return "LIKE" if of_users else "NOT LIKE"


def _half_clear(cursor: Any, org_id: int, day_param: Any, *, of_users: bool) -> None:
    """Delete the day's rows of one half, its sums over the segments included."""
    cursor.execute(
        "DELETE FROM analytics_dailydimensionusage WHERE organization_id = %s AND date = %s"
        f" AND dimension {_half_like(of_users)} %s",
        [org_id, day_param, _USER_DIMENSIONS],
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
    temp_table_fill(cursor, "ddu_top", _TOP_SQL)
    per_feature, event_all, user_all = _insert_sqls()
    cursor.execute(per_feature, [org_id, day_param])
    if of_users:
        cursor.execute(user_all, [org_id, day_param, org_id, day_param])
    else:
        cursor.execute(event_all, [org_id, day_param])
    cursor.execute(_ALL_SEGMENTS_SQL.format(like=_half_like(of_users)), [org_id, day_param, _USER_DIMENSIONS])


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
    temp_table_create(cursor, "ddu_u", f"uid BIGINT PRIMARY KEY, cls BIGINT, {_SEGMENT_COLUMNS}, properties {json}")
    cursor.execute(users_sql, params)
    temp_table_create(cursor, "ddu_cls", f"cls BIGINT, {_SEGMENT_COLUMNS}, properties {json}")
    cursor.execute(_CLASSES_SQL)
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
