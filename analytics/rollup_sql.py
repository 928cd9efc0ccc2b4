"""The SQL of a day's rollup steps that `rollup.rollup_day` runs itself: the day's scan into
groups, the feature and organisation rows, the person segments (the other steps' SQL lives
with them: `rollup_users`, `rollup_people`, `rollup_dimensions`, `active_days`, …)."""

from __future__ import annotations

from django.db import connection

from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .rollup_people import FEATURE_PEOPLE_TABLE
from .rollup_users import PAIRS_TABLE, SESSIONS_TABLE, SHARED_SESSIONS, USERS_TABLE

# One scan of the day's raw events, grouped by (feature, end user, session): every rollup
# table of the day is derived from these groups, so the events are read and hashed once,
# and the distinct counts run over the groups (~70 % of the events on the bench's peak day)
# instead of the events. A group's session key is NULL for events without a session, so
# COUNT(session_key) over one feature and user's groups is that pair's distinct sessions.
# Counts are INTEGER, the rollup tables' type, so that the sums over them stay integers
# (`rollup_users._PAIRS_SQL`). The organisation is the one asked for, not a grouping key
# (~10 % of the grouping's time). Parameters: the organisation, the day's bounds, the
# organisation.
DAY_TABLE = "rollup_day_events"
DAY_SQL = """
SELECT CAST(%s AS BIGINT) AS organization_id, feature_id, end_user_id, {session_key} AS session_key,
       CAST(COUNT(*) AS INTEGER) AS events,
       SUM(session_duration) AS duration, CAST(COUNT(session_duration) AS INTEGER) AS timed,
       MIN(timestamp) AS first_at, MAX(timestamp) AS last_at
FROM telemetry_usageevent
WHERE timestamp >= %s AND timestamp < %s AND organization_id = %s
GROUP BY feature_id, end_user_id, {session_key}
"""
DAY_KEYS = " (feature_id, end_user_id, session_key)"


def _rollup_sql(
    table: str,
    columns: dict[str, str],
    *,
    group: str,
    upsert_on: tuple[str, ...],
    where: str = "",
    changed_only: bool = False,
    source: str = DAY_TABLE,
) -> str:
    """`INSERT INTO table (organization_id, date, columns…) SELECT …` from the day's groups,
    grouped by `group`, upserted on the unique key (`upsert_on`: its columns besides
    organisation and day), refreshing every column but the key and `created_at`; with
    `changed_only`, only rows whose figures differ are written. Parameters: the day, then
    one timestamp per `%s` among the columns' expressions. `source`: what is read, the day's
    groups unless told."""
    names = ["organization_id", "date", *columns]
    select = ", ".join(["organization_id", "%s", *columns.values()])
    sql = f"INSERT INTO {table} ({', '.join(names)}) SELECT {select} FROM {source}"
    sql += f" WHERE {where}" if where else ""
    # In the order of the unique key: each new index entry lands next to the previous one.
    sql += f" GROUP BY {group} ORDER BY {group}"
    key = ["organization_id", "date", *upsert_on]
    updated = [name for name in names if name not in {*key, "created_at"}]
    sql += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in updated)}"
    if changed_only:
        # Every figure is NOT NULL, so `<>` is exact.
        figures = [name for name in updated if name != "computed_at"]
        sql += " WHERE " + " OR ".join(f"{table}.{n} <> excluded.{n}" for n in figures)
    return sql


_TIMED = {"total_session_duration": "COALESCE(SUM(duration), 0)", "timed_events": "SUM(timed)"}
_AVERAGE = {"avg_session_duration": "COALESCE(SUM(duration) / NULLIF(SUM(timed), 0), 0)"}
_STAMPS = {"created_at": "%s", "computed_at": "%s"}

# Active users are distinct end users, never summed over features: one person using two
# features is one active user. Anonymous events (end user NULL) count as events but not as
# users. These rows are few, and keep their id and created_at across re-rolls (upsert); a
# row a re-roll did not write is stale and deleted after it. Both are derived from the day's
# (feature, end user) pairs and sessions (`rollup_users`), far fewer than the groups. A
# feature's distinct sessions are its pairs' sessions (groups with a session), less the
# repeats of a shared session: its groups of the feature beyond the first, read only for
# the sessions shared by several users (usually none).
_FEATURE_SOURCE = f"""(
SELECT p.organization_id, p.feature_id, p.events, p.users, p.duration, p.timed,
       p.sessions - COALESCE(s.repeats, 0) AS sessions
FROM (
    SELECT organization_id, feature_id, SUM(event_count) AS events, COUNT(end_user_id) AS users,
           SUM(total_session_duration) AS duration, SUM(timed_events) AS timed, SUM(sessions) AS sessions
    FROM {PAIRS_TABLE} GROUP BY organization_id, feature_id
) p LEFT JOIN (
    SELECT feature_id, SUM(n - 1) AS repeats FROM (
        SELECT feature_id, session_key, COUNT(*) AS n FROM {DAY_TABLE}
        WHERE session_key IN {SHARED_SESSIONS} GROUP BY feature_id, session_key
    ) d GROUP BY feature_id
) s ON s.feature_id = p.feature_id
) f"""
_ORG_SOURCE = f"""(
SELECT organization_id, SUM(event_count) AS events, SUM(total_session_duration) AS duration,
       SUM(timed_events) AS timed, (SELECT COUNT(*) FROM {USERS_TABLE}) AS users,
       (SELECT COUNT(*) FROM {SESSIONS_TABLE}) AS sessions
FROM {PAIRS_TABLE} GROUP BY organization_id
) o"""
FEATURE_SQL = _rollup_sql(
    "analytics_dailyfeatureusage",
    {
        "feature_id": "feature_id",
        "event_count": "SUM(events)",
        "daily_active_users": "SUM(users)",
        "sessions": "SUM(sessions)",
        **_TIMED,
        **_AVERAGE,
        **_STAMPS,
    },
    group="organization_id, feature_id",
    upsert_on=("feature_id",),
    source=_FEATURE_SOURCE,
)
ORG_SQL = _rollup_sql(
    "analytics_dailyorgusage",
    {
        "event_count": "SUM(events)",
        "active_users": "SUM(users)",
        "sessions": "SUM(sessions)",
        **_TIMED,
        **_AVERAGE,
        **_STAMPS,
    },
    group="organization_id",
    upsert_on=(),
    source=_ORG_SOURCE,
)


# The day's person segments, from the day's per-user aggregates (`rollup_users`: the rows
# just written, read without visiting them) and each end user's profile: for all features
# (feature NULL), and per feature from the pairs already summed per segment
# (`rollup_people`); anonymous pairs join no end user. The age bands are the filter's
# (`person_segments`). Parameters: the day, the organisation, the day.
SEGMENT_SQL = f"""
INSERT INTO analytics_dailysegmentusage (
    organization_id, date, feature_id, age_band, gender, event_count, active_users, sessions,
    total_session_duration, timed_events)
SELECT r.organization_id, %s, NULL, {AGE_BAND_SQL}, {GENDER_SQL}, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM {USERS_TABLE} r JOIN telemetry_enduser u ON u.id = r.end_user_id
GROUP BY r.organization_id, {AGE_BAND_SQL}, {GENDER_SQL}
UNION ALL
SELECT %s, %s, feature_id, age_band, gender, events, users, sessions, duration, timed
FROM {FEATURE_PEOPLE_TABLE} WHERE per_segment = 1
"""


def session_key_sql() -> str:
    """What identifies a session in the day's groups. On PostgreSQL a 64-bit hash of the id:
    grouping and distinct-counting bigints costs about half of doing it on collated text (a
    1M-event day: ~1.5 s of CPU instead of ~2.2 s when measured); a collision among a day's
    sessions is about n²/2⁶⁵, negligible. Empty ids (no session) become NULL: no session."""
    if connection.vendor == "postgresql":
        return "hashtextextended(NULLIF(session_id, ''), 0)"
    return "NULLIF(session_id, '')"
