"""Daily rollups: raw events of one UTC day → DailyFeatureUsage, DailyOrgUsage, the per-user
rows (DailyUserUsage, DailyUserFeatureUsage, `rollup_users`) and, from those, the person
segments (DailySegmentUsage) and the accounts (DailyAccountUsage and its per-block feature
bitmasks, `rollup_accounts`); the active-day bitmasks (`active_days`) and the per-feature
recency rows (`recency`) from the per-user rows.

The database does the aggregation and no event row crosses into Python: one scan groups
the day's events by (feature, end user, session) into a temporary table, those groups are
aggregated per (feature, end user) and per end user (`rollup_users`), and each rollup table
is written from the finest aggregate that answers it. The feature and organisation rows are
upserted with the run's `computed_at`; rows of the same day left with an older stamp belong
to events that have since vanished and are deleted. The per-user rows are inserted plainly
on a day's first roll; on a re-roll only rows that changed are written, and rows whose key
is among none of the day's aggregates are deleted. Running a day twice
therefore changes nothing, and running it after late events corrects it. Rolling a day
also clears the late-data marks (`DirtyDay`) it makes redundant, whichever way it was
asked for (the hourly job, `manage.py rollup`, the API).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import overload

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from core.days import day_start
from core.db_routing import primary_pin
from telemetry.models import DirtyDay, UsageEvent
from telemetry.services.partitions import raw_events_horizon
from telemetry.services.storage import days_lock
from tenants.models import Organization

from .active_days import block_events_keep, rollup_active_days, rollup_feature_active_days
from .models import DailyFeatureUsage, DailyOrgUsage, DailySegmentUsage
from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .recency import recency_roll, recency_stale_rebuild
from .rollup_accounts import account_feature_days_roll, account_rows_replace
from .rollup_dimensions import dimensions_day_build
from .rollup_people import FEATURE_PEOPLE_TABLE, feature_people_build, feature_people_drop, people_moved
from .rollup_users import (
    PAIRS_TABLE,
    SESSIONS_TABLE,
    SHARED_SESSIONS,
    USERS_TABLE,
    per_user_groups_build,
    per_user_groups_drop,
    per_user_rows_write,
)
from .temp_tables import temp_table_fill, temp_tables_release

logger = logging.getLogger(__name__)

GENERATION_KEY = "analytics:generation:{org_id}"

# An organisation or its id; None: every organisation.
OrgRef = Organization | int | None

# One scan of the day's raw events, grouped by (feature, end user, session): every rollup
# table of the day is derived from these groups, so the events are read and hashed once,
# and the distinct counts run over the groups (~70 % of the events on the bench's peak day)
# instead of the events. A group's session key is NULL for events without a session, so
# COUNT(session_key) over one feature and user's groups is that pair's distinct sessions.
# Counts are INTEGER, the rollup tables' type, so that the sums over them stay integers
# (`rollup_users._PAIRS_SQL`). The organisation is the one asked for, not a grouping key
# (~10 % of the grouping's time). Parameters: the organisation, the day's bounds, the
# organisation.
_DAY_TABLE = "rollup_day_events"
_DAY_SQL = """
SELECT CAST(%s AS BIGINT) AS organization_id, feature_id, end_user_id, {session_key} AS session_key,
       CAST(COUNT(*) AS INTEGER) AS events,
       SUM(session_duration) AS duration, CAST(COUNT(session_duration) AS INTEGER) AS timed,
       MIN(timestamp) AS first_at, MAX(timestamp) AS last_at
FROM telemetry_usageevent
WHERE timestamp >= %s AND timestamp < %s AND organization_id = %s
GROUP BY feature_id, end_user_id, {session_key}
"""
_DAY_KEYS = " (feature_id, end_user_id, session_key)"


def _rollup_sql(
    table: str,
    columns: dict[str, str],
    *,
    group: str,
    upsert_on: tuple[str, ...],
    where: str = "",
    changed_only: bool = False,
    source: str = _DAY_TABLE,
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
        SELECT feature_id, session_key, COUNT(*) AS n FROM {_DAY_TABLE}
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
_FEATURE_SQL = _rollup_sql(
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
_ORG_SQL = _rollup_sql(
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
_SEGMENT_SQL = f"""
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


def _session_key_sql() -> str:
    """What identifies a session in the day's groups. On PostgreSQL a 64-bit hash of the id:
    grouping and distinct-counting bigints costs about half of doing it on collated text (a
    1M-event day: ~1.5 s of CPU instead of ~2.2 s when measured); a collision among a day's
    sessions is about n²/2⁶⁵, negligible. Empty ids (no session) become NULL: no session."""
    if connection.vendor == "postgresql":
        return "hashtextextended(NULLIF(session_id, ''), 0)"
    return "NULLIF(session_id, '')"


@overload
def _org_id(org: Organization | int) -> int: ...
@overload
def _org_id(org: None) -> None: ...
def _org_id(org: OrgRef) -> int | None:
    return org if org is None or isinstance(org, int) else org.pk


def generation(org_id: int) -> int:
    """The organisation's rollup generation: part of every dashboard cache key, bumped by
    each rollup so cached figures are dropped all at once."""
    return cache.get(GENERATION_KEY.format(org_id=org_id), 0)


def _bump_generation(org_ids: Iterable[int]) -> None:
    now = int(timezone.now().timestamp() * 1000)
    cache.set_many({GENERATION_KEY.format(org_id=org_id): now for org_id in org_ids}, timeout=None)


def rollup_day(day: date, org: OrgRef = None, *, recheck_bitmasks: bool = False) -> int:
    """Recompute `day` (a UTC day) for one organisation (an Organization or its id) or all.
    Returns the number of feature and organisation rows written (the per-user rows are
    written too but not counted). The per-feature active-day bits are brought in line only
    where the day's per-feature rows changed, or everywhere with `recheck_bitmasks` (the
    repair after rows were written outside the rollup, docs/decisions.md 2026-12-02)."""
    org_id = _org_id(org)
    horizon = raw_events_horizon()
    if horizon is not None and day < horizon.date():
        # Its raw events are past RAW_EVENT_RETENTION_MONTHS (dropped, or about to be):
        # recomputing it would replace the rollups kept for it with nothing.
        logger.info("not rolling up %s: before the raw-event retention horizon %s", day, horizon.date())
        return 0
    if org_id is None:
        # One organisation at a time: each reads the day through the (organization,
        # timestamp) index, where one statement for all would scan the whole event table
        # once per rollup table.
        org_ids = Organization.objects.order_by("pk").values_list("pk", flat=True)
        return sum(rollup_day(day, pk, recheck_bitmasks=recheck_bitmasks) for pk in org_ids)
    ops = connection.ops
    computed_at = timezone.now()
    now = ops.adapt_datetimefield_value(computed_at)
    day_param = ops.adapt_datefield_value(day)
    window = [ops.adapt_datetimefield_value(day_start(d)) for d in (day, day + timedelta(days=1))]
    marks = DirtyDay.objects.filter(date=day, organization_id=org_id)
    with transaction.atomic(), connection.cursor() as cursor:
        # Late events of this day being stored right now are waited for, and those that
        # come during the run wait for its commit (telemetry.services.storage.dirty_days):
        # the marks read here come with their events, a mark set from here on is kept.
        days_lock(day=day, org_ids=[org_id])
        handled = list(marks.values_list("pk", "marked_at"))
        if connection.vendor == "postgresql":
            # Keep a million-event day's grouping and distinct-count sorts in memory.
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # The rollup is derived data, re-runnable from the raw events: its commit need not
            # wait for the WAL flush (docs/decisions.md, 2026-12-01). A server crash in the
            # fraction of a second after it loses the run as if it had not happened; the
            # day's late-data marks come back with it and are re-rolled by the hourly job.
            cursor.execute("SET LOCAL synchronous_commit = off")
        # The day's groups live until the end of this block: a failure rolls their creation
        # back with everything else.
        temp_table_fill(cursor, _DAY_TABLE, _DAY_SQL.format(session_key=_session_key_sql()), [org_id, *window, org_id])
        # Statistics of the groups' keys, which the groupings and lookups below are planned on:
        # the planner then sizes their hashes (the other columns' would cost time, ~40 % of
        # the ANALYZE, and serve nothing).
        cursor.execute(f"ANALYZE {_DAY_TABLE}{_DAY_KEYS if connection.vendor == 'postgresql' else ''}")
        per_user_groups_build(cursor, org_id)
        feature_people_build(cursor)
        written = 0
        for sql in (_FEATURE_SQL, _ORG_SQL):
            cursor.execute(sql, [day_param, now, now])
            written += cursor.rowcount
        # The weekly totals take the day's change: its per-user rows before and after. The
        # per-user rows are not part of the count returned, which stays the number of
        # dashboard rows (the API's figure).
        block_events_keep(cursor, org_id, day)
        feature_rows = per_user_rows_write(cursor, org_id, day_param, now)
        temp_tables_release(cursor, _DAY_TABLE)
        stale: dict[str, object] = {"date": day, "computed_at__lt": computed_at, "organization_id": org_id}
        DailyFeatureUsage.objects.filter(**stale).delete()
        DailyOrgUsage.objects.filter(**stale).delete()
        rollup_active_days(cursor, org_id, day)
        bits_changed = rollup_feature_active_days(
            cursor,
            org_id,
            day,
            rows_deleted=feature_rows.deleted or recheck_bitmasks,
            rows_inserted=feature_rows.inserted or recheck_bitmasks,
        )
        # The recency rows split by segment and account too: a user whose age, gender or
        # account changed since the day's last roll moves there with them.
        moved = recheck_bitmasks or people_moved(cursor, org_id, day_param)
        # Segments are few per day: replaced whole, after the per-user rows are final.
        DailySegmentUsage.objects.filter(organization_id=org_id, date=day).delete()
        cursor.execute(_SEGMENT_SQL, [day_param, org_id, day_param])
        # Before the recency step: its rows per event type read the per-event-type bitmasks.
        type_bits_changed = dimensions_day_build(cursor, org_id=org_id, day=day, window=window)
        recency_roll(cursor, org_id, day, bits_changed=bits_changed or type_bits_changed, people_moved=moved)
        account_rows_replace(cursor, org_id, day_param)
        account_feature_days_roll(cursor, org_id, day)
        feature_people_drop(cursor)
        per_user_groups_drop(cursor)
        for mark_id, marked_at in handled:
            DirtyDay.objects.filter(pk=mark_id, marked_at=marked_at).delete()
    _bump_generation([org_id])
    # Until the read replica has replayed this rollup, this organisation's figures are read
    # on the primary, or the new cache generation would be filled with the old figures.
    primary_pin(org_ids=[org_id])
    return max(written, 0)


def rollup_range(
    since: date,
    until: date,
    org: OrgRef = None,
    progress: Callable[[date, int], None] | None = None,
    *,
    recheck_bitmasks: bool = False,
) -> int:
    """Roll up every day of since..until (inclusive); `progress(day, rows)` after each day."""
    total = 0
    day = since
    while day <= until:
        rows = rollup_day(day, org, recheck_bitmasks=recheck_bitmasks)
        total += rows
        if progress is not None:
            progress(day, rows)
        day += timedelta(days=1)
    recency_stale_rebuild(_org_id(org))
    return total


def event_days(org: OrgRef = None) -> tuple[date, date] | None:
    """(first, last) UTC day holding events, for one organisation or all; None when empty."""
    qs = UsageEvent.objects.all()
    if org is not None:
        qs = qs.filter(organization_id=_org_id(org))
    span = qs.aggregate(first=Min("timestamp"), last=Max("timestamp"))
    if span["first"] is None:
        return None
    return _utc_day(span["first"]), _utc_day(span["last"])


def _utc_day(value: datetime) -> date:
    return value.astimezone(UTC).date()


def dirty_days() -> dict[int, list[date]]:
    """{organization_id: [days marked dirty]}, oldest first."""
    marked: dict[int, list[date]] = {}
    for org_id, day in DirtyDay.objects.order_by("organization_id", "date").values_list("organization_id", "date"):
        marked.setdefault(org_id, []).append(day)
    return marked


def dirty_count(since: date, until: date, org: OrgRef = None) -> int:
    """How many late-data marks fall on since..until (inclusive)."""
    marks = DirtyDay.objects.filter(date__gte=since, date__lte=until)
    if org is not None:
        marks = marks.filter(organization_id=_org_id(org))
    return marks.count()


def rollup_dirty() -> int:
    """Re-roll every (organisation, day) marked by late events; `rollup_day` drops each
    mark it handled. Returns the number of (organisation, day) pairs re-rolled."""
    marks = list(DirtyDay.objects.order_by("date").values_list("organization_id", "date"))
    for org_id, day in marks:
        rollup_day(day, org_id)
    recency_stale_rebuild()
    if marks:
        logger.info("re-rolled %d dirty (organisation, day) pairs", len(marks))
    return len(marks)
