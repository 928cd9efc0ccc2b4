"""The SQL of the day's dimension rollup (`rollup_dimensions`, whose docstring tells the
steps) and what its rows hold: the caps, the value of an event without the property, the
folded values, the marker dimensions and the rows summed over the segments."""

from __future__ import annotations

from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .temp_tables import on_postgres

MAX_EVENT_KEYS = 10
MAX_USER_KEYS = 10
MAX_VALUES = 50
# Candidate keys read before the name check and the cap.
KEY_CANDIDATES = 200
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
SEGMENT_COLUMNS = "age_band VARCHAR(5), gender VARCHAR(1)"
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


def grouped_sqls() -> list[str]:
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


def event_keys_sql() -> str:
    if on_postgres():
        keys = "jsonb_object_keys(CASE WHEN jsonb_typeof(g.metadata) = 'object' THEN g.metadata ELSE '{}' END) p"
        key = "p"
    else:
        keys = "json_each(CASE WHEN json_type(g.metadata) = 'object' THEN g.metadata ELSE '{}' END) p"
        key = "p.key"
    return f"""
SELECT {key}, SUM(g.events) FROM ddu_g g, {keys}
WHERE g.kind = {PER_USER}
GROUP BY {key} ORDER BY SUM(g.events) DESC, {key} LIMIT {KEY_CANDIDATES}
"""


def user_keys_sql() -> str:
    if on_postgres():
        keys = "jsonb_object_keys(CASE WHEN jsonb_typeof(u.properties) = 'object' THEN u.properties ELSE '{}' END) p"
        key = "p"
    else:
        keys = "json_each(CASE WHEN json_type(u.properties) = 'object' THEN u.properties ELSE '{}' END) p"
        key = "p.key"
    return f"""
SELECT {key}, COUNT(*) FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id, {keys}
WHERE r.organization_id = %s AND r.date = %s
GROUP BY {key} ORDER BY COUNT(*) DESC, {key} LIMIT {KEY_CANDIDATES}
"""


def _event_value() -> str:
    return f"""CASE WHEN k.dim = 'event_type' THEN {_or_none("g.event_type")}
        WHEN k.dim = '{EVENTS_MARK}' THEN '{NONE}' ELSE {_or_none(_prop("g.metadata"))} END"""


def _user_value(properties: str = "u.properties") -> str:
    return f"CASE WHEN k.dim = '{USERS_MARK}' THEN '{NONE}' ELSE {_or_none(_prop(properties))} END"


_STAGE_COLUMNS = (
    "INSERT INTO ddu_stage (feature_id, age_band, gender, dim, val, events, users, sessions, duration, timed)"
)


def stage_sqls() -> list[str]:
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
USERS_SQL = f"""
INSERT INTO ddu_u (uid, cls, age_band, gender, properties)
SELECT r.end_user_id, DENSE_RANK() OVER (ORDER BY {AGE_BAND_SQL}, {GENDER_SQL}, u.properties),
       {_SEGMENT}, u.properties
FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
WHERE r.organization_id = %s AND r.date = %s
"""
CLASSES_SQL = """
INSERT INTO ddu_cls (cls, age_band, gender, properties)
SELECT DISTINCT cls, age_band, gender, properties FROM ddu_u
"""


# The MAX_VALUES values of each dimension with most events, over all features.
TOP_SQL = f"""
SELECT dim, val FROM (
    SELECT dim, val, ROW_NUMBER() OVER (PARTITION BY dim ORDER BY SUM(events) DESC, val) AS n
    FROM ddu_stage GROUP BY dim, val
) ranked WHERE n <= {MAX_VALUES}
"""

_COLUMNS = """INSERT INTO analytics_dailydimensionusage (
    organization_id, date, feature_id, dimension, value, age_band, gender, event_count, active_users, sessions,
    total_session_duration, timed_events)"""
_KEPT = f"COALESCE(t.val, '{FOLDED}')"


def insert_sqls() -> list[str]:
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


TEMP_TABLES = ("ddu_g", "ddu_u", "ddu_cls", "ddu_stage", "ddu_keys", "ddu_top")

# Each row of the day summed over the segments (age band and gender ALL_SEGMENTS): exact for
# distinct users too, as every user is in one segment. Parameters: the organisation, the day,
# the dimensions' LIKE pattern.
ALL_SEGMENTS_SQL = f"""{_COLUMNS}
SELECT organization_id, date, feature_id, dimension, value, '{ALL_SEGMENTS}', '{ALL_SEGMENTS}', SUM(event_count),
       SUM(active_users), SUM(sessions), SUM(total_session_duration), SUM(timed_events)
FROM analytics_dailydimensionusage
WHERE organization_id = %s AND date = %s AND dimension {{like}} %s AND age_band <> '{ALL_SEGMENTS}'
GROUP BY organization_id, date, feature_id, dimension, value
"""


# The day's end users of the organisation with their segment class, for the event
# dimensions: one class per (age band, gender), all the organisation's users (an index range
# of its end users), as the events pass runs beside the per-user rows, before they exist
# (`rollup.rollup_day`); a user without an event that day joins no event.
SEGMENT_USERS_SQL = f"""
INSERT INTO ddu_u (uid, cls, age_band, gender, properties)
SELECT u.id, DENSE_RANK() OVER (ORDER BY {AGE_BAND_SQL}, {GENDER_SQL}), {_SEGMENT}, NULL
FROM telemetry_enduser u WHERE u.organization_id = %s
"""
# The user dimensions' names all start so; the event dimensions' (event_type, event.*) never do.
USER_DIMENSIONS = "user.%"
