"""Daily rollups: raw events of one UTC day → DailyFeatureUsage, DailyOrgUsage, the per-user
rows (DailyUserUsage, DailyUserFeatureUsage) and, from those, the person segments
(DailySegmentUsage) and the accounts (DailyAccountUsage, `rollup_accounts`).

One `INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE` per table, so the database does
the aggregation and no event row crosses into Python; PostgreSQL and SQLite (≥ 3.24) both
accept the statement. Every row written in a run gets the run's `computed_at`; rows of the
same day left with an older stamp belong to events that have since vanished and are
deleted. Running a day twice therefore changes nothing, and running it after late events
corrects it. Rolling a day also clears the late-data marks (`DirtyDay`) it makes redundant,
whichever way it was asked for (the hourly job, `manage.py rollup`, the API).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, overload

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

from .active_days import rollup_active_days
from .models import DailyFeatureUsage, DailyOrgUsage, DailySegmentUsage, DailyUserFeatureUsage, DailyUserUsage
from .rollup_accounts import account_rows_replace
from .rollup_dimensions import dimensions_day_build

logger = logging.getLogger(__name__)

GENERATION_KEY = "analytics:generation:{org_id}"

# An organisation or its id; None: every organisation.
OrgRef = Organization | int | None

_FEATURE_SQL = """
INSERT INTO analytics_dailyfeatureusage (
    organization_id, feature_id, date, event_count, daily_active_users, sessions,
    total_session_duration, avg_session_duration, timed_events, created_at, computed_at)
SELECT organization_id, feature_id, %s, COUNT(*), COUNT(DISTINCT end_user_id),
       COUNT(DISTINCT {session_key}), COALESCE(SUM(session_duration), 0),
       COALESCE(AVG(session_duration), 0), COUNT(session_duration), %s, %s
FROM telemetry_usageevent
WHERE timestamp >= %s AND timestamp < %s AND organization_id = %s
GROUP BY organization_id, feature_id
ON CONFLICT (organization_id, feature_id, date) DO UPDATE SET
    event_count = excluded.event_count,
    daily_active_users = excluded.daily_active_users,
    sessions = excluded.sessions,
    total_session_duration = excluded.total_session_duration,
    avg_session_duration = excluded.avg_session_duration,
    timed_events = excluded.timed_events,
    computed_at = excluded.computed_at
"""

# Active users are counted from the raw events, never summed from the feature rows: one
# person using two features is one active user. COUNT(DISTINCT end_user_id) skips NULLs, so
# anonymous events count as events but not as users.
_ORG_SQL = """
INSERT INTO analytics_dailyorgusage (
    organization_id, date, event_count, active_users, sessions, avg_session_duration,
    total_session_duration, timed_events, created_at, computed_at)
SELECT organization_id, %s, COUNT(*), COUNT(DISTINCT end_user_id),
       COUNT(DISTINCT {session_key}), COALESCE(AVG(session_duration), 0),
       COALESCE(SUM(session_duration), 0), COUNT(session_duration), %s, %s
FROM telemetry_usageevent
WHERE timestamp >= %s AND timestamp < %s AND organization_id = %s
GROUP BY organization_id
ON CONFLICT (organization_id, date) DO UPDATE SET
    event_count = excluded.event_count,
    active_users = excluded.active_users,
    sessions = excluded.sessions,
    avg_session_duration = excluded.avg_session_duration,
    total_session_duration = excluded.total_session_duration,
    timed_events = excluded.timed_events,
    computed_at = excluded.computed_at
"""


# Per-user rows: anonymous events (no end user) belong to no user row; they are counted by
# the organisation and feature rows above only.
_USER_SQL = """
INSERT INTO analytics_dailyuserusage (
    organization_id, end_user_id, date, event_count, sessions, total_session_duration,
    timed_events, features_used, first_event_at, last_event_at, computed_at)
SELECT organization_id, end_user_id, %s, COUNT(*), COUNT(DISTINCT {session_key}),
       COALESCE(SUM(session_duration), 0), COUNT(session_duration), COUNT(DISTINCT feature_id),
       MIN(timestamp), MAX(timestamp), %s
FROM telemetry_usageevent
WHERE timestamp >= %s AND timestamp < %s AND end_user_id IS NOT NULL AND organization_id = %s
GROUP BY organization_id, end_user_id
ON CONFLICT (organization_id, date, end_user_id) DO UPDATE SET
    event_count = excluded.event_count,
    sessions = excluded.sessions,
    total_session_duration = excluded.total_session_duration,
    timed_events = excluded.timed_events,
    features_used = excluded.features_used,
    first_event_at = excluded.first_event_at,
    last_event_at = excluded.last_event_at,
    computed_at = excluded.computed_at
"""

_USER_FEATURE_SQL = """
INSERT INTO analytics_dailyuserfeatureusage (
    organization_id, feature_id, end_user_id, date, event_count, sessions,
    total_session_duration, timed_events, computed_at)
SELECT organization_id, feature_id, end_user_id, %s, COUNT(*), COUNT(DISTINCT {session_key}),
       COALESCE(SUM(session_duration), 0), COUNT(session_duration), %s
FROM telemetry_usageevent
WHERE timestamp >= %s AND timestamp < %s AND end_user_id IS NOT NULL AND organization_id = %s
GROUP BY organization_id, feature_id, end_user_id
ON CONFLICT (organization_id, feature_id, date, end_user_id) DO UPDATE SET
    event_count = excluded.event_count,
    sessions = excluded.sessions,
    total_session_duration = excluded.total_session_duration,
    timed_events = excluded.timed_events,
    computed_at = excluded.computed_at
"""


# The day's person segments, from the per-user rows just written and each end user's
# profile: for all features (feature NULL) and per feature. The age bands are the filter's
# (analytics.queries.filters.AGE_BANDS); an unknown age is the band "".
_AGE_BAND_SQL = """CASE WHEN u.age IS NULL THEN '' WHEN u.age < 18 THEN '<18'
    WHEN u.age <= 40 THEN '18-40' ELSE '>40' END"""
_SEGMENT_SQL = f"""
INSERT INTO analytics_dailysegmentusage (
    organization_id, date, feature_id, age_band, gender, event_count, active_users, sessions,
    total_session_duration, timed_events)
SELECT r.organization_id, r.date, NULL, {_AGE_BAND_SQL}, u.gender, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM analytics_dailyuserusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
WHERE r.organization_id = %s AND r.date = %s
GROUP BY r.organization_id, r.date, {_AGE_BAND_SQL}, u.gender
UNION ALL
SELECT r.organization_id, r.date, r.feature_id, {_AGE_BAND_SQL}, u.gender, SUM(r.event_count), COUNT(*),
       SUM(r.sessions), SUM(r.total_session_duration), SUM(r.timed_events)
FROM analytics_dailyuserfeatureusage r JOIN telemetry_enduser u ON u.id = r.end_user_id
WHERE r.organization_id = %s AND r.date = %s
GROUP BY r.organization_id, r.date, r.feature_id, {_AGE_BAND_SQL}, u.gender
"""


def _session_key_sql() -> str:
    """What COUNT(DISTINCT …) counts for sessions. On PostgreSQL a 64-bit hash of the id:
    distinct-counting sorts, and sorting bigints costs half of sorting collated text (a
    1M-event day: ~1.5 s of CPU instead of ~2.2 s); a collision among a day's sessions is
    about n²/2⁶⁵, negligible. Empty ids (no session) become NULL and are not counted."""
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


def rollup_day(day: date, org: OrgRef = None) -> int:
    """Recompute `day` (a UTC day) for one organisation (an Organization or its id) or all.
    Returns the number of feature and organisation rows written (the per-user rows are
    written too but not counted)."""
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
        return sum(rollup_day(day, pk) for pk in Organization.objects.order_by("pk").values_list("pk", flat=True))
    start = day_start(day)
    end = day_start(day + timedelta(days=1))
    ops = connection.ops
    now = timezone.now()
    stamps: list[Any] = [
        ops.adapt_datefield_value(day),
        ops.adapt_datetimefield_value(now),
        ops.adapt_datetimefield_value(now),
    ]
    window: list[Any] = [ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)]
    org_params: list[Any] = [org_id]
    marks = DirtyDay.objects.filter(date=day, organization_id=org_id)
    with transaction.atomic(), connection.cursor() as cursor:
        # Late events of this day being stored right now are waited for, and those that
        # come during the run wait for its commit (telemetry.services.storage.dirty_days):
        # the marks read here come with their events, a mark set from here on is kept.
        days_lock(day=day, org_ids=[org_id] if org_id is not None else marks.values_list("organization_id", flat=True))
        handled = list(marks.values_list("pk", "marked_at"))
        if connection.vendor == "postgresql":
            # COUNT(DISTINCT …) sorts; keep a million-event day's sort in memory.
            cursor.execute("SET LOCAL work_mem = '256MB'")
        session_key = _session_key_sql()
        cursor.execute(_FEATURE_SQL.format(session_key=session_key), stamps + window + org_params)
        written = cursor.rowcount
        cursor.execute(_ORG_SQL.format(session_key=session_key), stamps + window + org_params)
        written += cursor.rowcount
        # The per-user tables have no created_at (one stamp fewer); their rows are not part
        # of the count returned, which stays the number of dashboard rows (the API's figure).
        for sql in (_USER_SQL, _USER_FEATURE_SQL):
            cursor.execute(sql.format(session_key=session_key), stamps[:2] + window + org_params)
        stale: dict[str, object] = {"date": day, "computed_at__lt": now, "organization_id": org_id}
        DailyFeatureUsage.objects.filter(**stale).delete()
        DailyOrgUsage.objects.filter(**stale).delete()
        DailyUserUsage.objects.filter(**stale).delete()
        DailyUserFeatureUsage.objects.filter(**stale).delete()
        rollup_active_days(cursor, org_id, day)
        # Segments are few per day: replaced whole, after the per-user rows are final.
        DailySegmentUsage.objects.filter(organization_id=org_id, date=day).delete()
        day_param = ops.adapt_datefield_value(day)
        cursor.execute(_SEGMENT_SQL, [org_id, day_param, org_id, day_param])
        dimensions_day_build(cursor, org_id=org_id, day=day, window=window)
        account_rows_replace(cursor, org_id, day_param)
        for mark_id, marked_at in handled:
            DirtyDay.objects.filter(pk=mark_id, marked_at=marked_at).delete()
    _bump_generation([org_id])
    # Until the read replica has replayed this rollup, this organisation's figures are read
    # on the primary, or the new cache generation would be filled with the old figures.
    primary_pin(org_ids=[org_id])
    return max(written, 0)


def rollup_range(
    since: date, until: date, org: OrgRef = None, progress: Callable[[date, int], None] | None = None
) -> int:
    """Roll up every day of since..until (inclusive); `progress(day, rows)` after each day."""
    total = 0
    day = since
    while day <= until:
        rows = rollup_day(day, org)
        total += rows
        if progress is not None:
            progress(day, rows)
        day += timedelta(days=1)
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
    if marks:
        logger.info("re-rolled %d dirty (organisation, day) pairs", len(marks))
    return len(marks)
