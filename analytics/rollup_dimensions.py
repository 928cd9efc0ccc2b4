"""The day's dimension rollup (DailyDimensionUsage): events, daily active users and session
time per value of `event_type`, of the busiest event properties and of the busiest end-user
properties, per person segment, for all features and per feature — so that breakdowns by
those dimensions never read raw events.

Built inside `rollup_day`'s transaction, after the per-user rows are final, in a few
statements over temporary tables, all in the database:

1. the day's events grouped by (feature, end user, event type, metadata) — a handful of
   rows per user and feature when property values repeat — then expanded into one row per
   (feature, end user, dimension, value), plus a total per (feature, end user);
   user properties come from the day's per-user feature rows and each end user's profile
   as it is at rollup time (as the person segments take age and gender);
2. events without a property (or with an empty one) become the value "(none)": the total
   minus what carried a value, per (feature, end user);
3. the caps, so hostile cardinality cannot blow the table up: at most MAX_EVENT_KEYS event
   properties and MAX_USER_KEYS user properties per organisation and day (the ones on most
   events, and only names a breakdown can ask for), and per dimension the MAX_VALUES values
   with most events; the rest of a dimension's values are folded into the value ""
   (shown as "other"). A property past the key cap has no rows that day;
4. one row per (feature or all features, dimension, value, age band, gender).

Cost: one more index range scan of the day's events and a grouping of their distinct
(feature, user, type, metadata) combinations; measured in docs/benchmarks.md."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from django.db import connection

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

_AGE_BAND_SQL = """CASE WHEN u.age IS NULL THEN '' WHEN u.age < 18 THEN '<18'
    WHEN u.age <= 40 THEN '18-40' ELSE '>40' END"""


def _json(sql_pg: str, sql_lite: str) -> str:
    return sql_pg if connection.vendor == "postgresql" else sql_lite


def _events_stage_sql() -> str:
    each = _json(
        "jsonb_each_text(CASE WHEN jsonb_typeof(g.metadata) = 'object' THEN g.metadata ELSE '{}'::jsonb END)",
        "json_each(CASE WHEN json_type(g.metadata) = 'object' THEN g.metadata ELSE '{}' END)",
    )
    value = _json("p.value", "CAST(p.value AS TEXT)")
    return f"""
CREATE TEMP TABLE ddu_stage AS
WITH g AS (
    SELECT feature_id, COALESCE(end_user_id, 0) AS uid, event_type, metadata, COUNT(*) AS events,
           COALESCE(SUM(session_duration), 0) AS duration, COUNT(session_duration) AS timed
    FROM telemetry_usageevent
    WHERE organization_id = %s AND timestamp >= %s AND timestamp < %s
    GROUP BY feature_id, COALESCE(end_user_id, 0), event_type, metadata
), kv AS (
    SELECT feature_id, uid, '{EVENTS_MARK}' AS dim, '{NONE}' AS val, events, duration, timed FROM g
    UNION ALL
    SELECT feature_id, uid, 'event_type', NULLIF(event_type, ''), events, duration, timed FROM g
    UNION ALL
    SELECT g.feature_id, g.uid, 'event.' || p.key, NULLIF({value}, ''), g.events, g.duration, g.timed
    FROM g, {each} p
)
SELECT feature_id, uid, dim, val, SUM(events) AS events, SUM(duration) AS duration, SUM(timed) AS timed
FROM kv WHERE val IS NOT NULL
GROUP BY feature_id, uid, dim, val
"""


def _user_keys_sql() -> str:
    each = _json(
        "jsonb_object_keys(CASE WHEN jsonb_typeof(u.properties) = 'object' THEN u.properties ELSE '{}'::jsonb END)",
        "json_each(CASE WHEN json_type(u.properties) = 'object' THEN u.properties ELSE '{}' END)",
    )
    key = _json("p", "p.key")
    return f"""
SELECT {key}, COUNT(*) FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id, {each} p
WHERE r.organization_id = %s AND r.date = %s
GROUP BY {key} ORDER BY COUNT(*) DESC, {key} LIMIT {_KEY_CANDIDATES}
"""


def _user_stage_sql() -> str:
    prop = _json("u.properties ->> k.name", """json_extract(u.properties, '$."' || k.name || '"')""")
    return f"""
INSERT INTO ddu_stage (feature_id, uid, dim, val, events, duration, timed)
SELECT r.feature_id, r.end_user_id, k.dim, COALESCE(NULLIF(CAST({prop} AS TEXT), ''), '{NONE}'),
       r.event_count, r.total_session_duration, r.timed_events
FROM analytics_dailyuserfeatureusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
CROSS JOIN ddu_keys k
WHERE r.organization_id = %s AND r.date = %s AND k.kind = 'user'
UNION ALL
SELECT r.feature_id, r.end_user_id, '{USERS_MARK}', '{NONE}', r.event_count, r.total_session_duration,
       r.timed_events
FROM analytics_dailyuserfeatureusage r
WHERE r.organization_id = %s AND r.date = %s
"""


# Events of a (feature, user) without a value for an event dimension: the total less the rest.
_NONE_SQL = f"""
INSERT INTO ddu_stage (feature_id, uid, dim, val, events, duration, timed)
SELECT t.feature_id, t.uid, k.dim, '{NONE}', t.events - COALESCE(p.events, 0),
       t.duration - COALESCE(p.duration, 0), t.timed - COALESCE(p.timed, 0)
FROM ddu_stage t JOIN ddu_keys k ON k.kind = 'event'
LEFT JOIN (
    SELECT feature_id, uid, dim, SUM(events) AS events, SUM(duration) AS duration, SUM(timed) AS timed
    FROM ddu_stage WHERE dim <> '{EVENTS_MARK}' GROUP BY feature_id, uid, dim
) p ON p.feature_id = t.feature_id AND p.uid = t.uid AND p.dim = k.dim
WHERE t.dim = '{EVENTS_MARK}' AND t.events > COALESCE(p.events, 0)
"""

_TOP_SQL = f"""
CREATE TEMP TABLE ddu_top AS
SELECT dim, val FROM (
    SELECT s.dim, s.val, ROW_NUMBER() OVER (PARTITION BY s.dim ORDER BY SUM(s.events) DESC, s.val) AS n
    FROM ddu_stage s JOIN ddu_keys k ON k.dim = s.dim
    GROUP BY s.dim, s.val
) ranked WHERE n <= {MAX_VALUES}
"""

_ROWS_SELECT = f"""
SELECT %s, %s, {{feature}}, s.dim, COALESCE(t.val, '{FOLDED}'), {_AGE_BAND_SQL}, COALESCE(u.gender, ''),
       SUM(s.events), COUNT(DISTINCT NULLIF(s.uid, 0)), SUM(s.duration), SUM(s.timed)
FROM ddu_stage s JOIN ddu_keys k ON k.dim = s.dim
LEFT JOIN ddu_top t ON t.dim = s.dim AND t.val = s.val
LEFT JOIN telemetry_enduser u ON u.id = s.uid
GROUP BY {{group}}s.dim, COALESCE(t.val, '{FOLDED}'), {_AGE_BAND_SQL}, COALESCE(u.gender, '')
"""
_INSERT_SQL = (
    """
INSERT INTO analytics_dailydimensionusage (
    organization_id, date, feature_id, dimension, value, age_band, gender, event_count, active_users,
    total_session_duration, timed_events)
"""
    + _ROWS_SELECT.format(feature="s.feature_id", group="s.feature_id, ")
    + "UNION ALL"
    + _ROWS_SELECT.format(feature="NULL", group="")
)

_TEMP_TABLES = ("ddu_stage", "ddu_keys", "ddu_top")


def _chosen(candidates: list[tuple[str, Any]], limit: int) -> list[str]:
    names = [str(name) for name, _count in candidates]
    return [name for name in names if _NAME_RE.fullmatch(name) and ".." not in name][:limit]


def dimensions_day_build(cursor: Any, *, org_id: int, day: date, window: list[Any]) -> None:
    """Replace `day`'s DailyDimensionUsage rows of `org_id` (see the module docstring).
    `cursor`: the rollup's, inside its transaction; `window`: the day's [start, end) as
    adapted timestamps. Runs after the day's per-user rows are final."""
    day_param = connection.ops.adapt_datefield_value(day)
    for table in _TEMP_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(
        "DELETE FROM analytics_dailydimensionusage WHERE organization_id = %s AND date = %s", [org_id, day_param]
    )
    cursor.execute(_events_stage_sql(), [org_id, *window])
    cursor.execute(
        "SELECT dim, SUM(events) FROM ddu_stage WHERE dim LIKE 'event.%%' GROUP BY dim "
        f"ORDER BY SUM(events) DESC, dim LIMIT {_KEY_CANDIDATES}"
    )
    event_keys = _chosen([(dim[len("event.") :], n) for dim, n in cursor.fetchall()], MAX_EVENT_KEYS)
    cursor.execute(_user_keys_sql(), [org_id, day_param])
    user_keys = _chosen(cursor.fetchall(), MAX_USER_KEYS)
    cursor.execute("CREATE TEMP TABLE ddu_keys (kind VARCHAR(5), dim TEXT, name TEXT)")
    keys = [("mark", EVENTS_MARK, ""), ("mark", USERS_MARK, ""), ("event", "event_type", "")]
    keys += [("event", f"event.{name}", name) for name in event_keys]
    keys += [("user", f"user.{name}", name) for name in user_keys]
    cursor.executemany("INSERT INTO ddu_keys (kind, dim, name) VALUES (%s, %s, %s)", keys)
    cursor.execute(_NONE_SQL)
    cursor.execute(_user_stage_sql(), [org_id, day_param, org_id, day_param])
    cursor.execute(_TOP_SQL)
    cursor.execute(_INSERT_SQL, [org_id, day_param, org_id, day_param])
    for table in _TEMP_TABLES:
        cursor.execute(f"DROP TABLE {table}")
