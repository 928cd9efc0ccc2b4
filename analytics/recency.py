"""Per feature and day, how long its users had been away (`DailyFeatureRecency`, and per
person segment `DailyFeatureSegmentRecency`): the rollup step that builds a day's rows from
the per-feature bitmasks, the marks of days an earlier day's re-roll made stale and their
rebuild, and the distinct-users read over a range.

A day's row of a feature holds `absent_before[k]`: its users of that day with no use of the
feature on the k days before. Over start..end, a user is counted on the first day d of the
range they used the feature, exactly the day where they had been absent for the d - start
days before; so the feature's distinct users are Σ_d absent_before[d - start], one row per
feature and day (90 days of 50 features: 4,500 rows, where the bitmasks hold one per user,
feature and block: 1.29 M on the 10 M-event bench). The segment rows split each day's row by
the users' age band and gender when the day's rows are built (up to 16 a feature and day), so
the age and gender filters sum those instead. The rows of all features per segment and
the rows per event type (`recency_segments`) are built, marked stale and rebuilt with them.

A bitmask row carries its own block and copies of the two blocks before (`earlier_days_1`,
`_2`), so each active user's previous day of use within RECENCY_DAYS is one row's bit test.
The rows of day n depend on the days before it: a re-roll of day d that changed a bit marks
the rolled days d+1 … d+RECENCY_DAYS stale (`FeatureRecencyStale`); a read over a range
holding a stale day counts from the bitmasks, and every rollup run ends by rebuilding the
marked days (`recency_stale_rebuild`), each once however many days marked it."""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction

from .active_days import bitmask_steps_lock, block_of, day_bit
from .models import (
    DailyAccountRecency,
    DailyEventTypeRecency,
    DailyFeatureRecency,
    DailyFeatureSegmentRecency,
    DailySegmentRecency,
    FeatureRecencyStale,
)
from .person_segments import AGE_BAND_SQL, GENDER_SQL
from .planner import plans_without
from .recency_gaps import RECENCY_DAYS, gap_sql
from .recency_segments import event_type_recency_build, segment_recency_build
from .temp_tables import on_postgres

logger = logging.getLogger(__name__)

# The day's users of each feature, one row per user: their person segment and account (the
# users' now, `person_segments`) and gap. A row whose end user is gone falls in the unknown
# segment and no account.
_DAY_ROWS_SQL = f"""
SELECT f.feature_id, {AGE_BAND_SQL} AS age_band, {GENDER_SQL} AS gender, u.account_id, {{gap}} AS gap
FROM analytics_userfeatureactivedays f LEFT JOIN telemetry_enduser u ON u.id = f.end_user_id
WHERE f.organization_id = %s AND f.block_start = %s AND (f.active_days & CAST(%s AS BIGINT)) <> 0
"""
# Those rows counted per feature, segment and gap (the segment rows and, summed over the
# segments, the feature's), and per feature, account and gap, written as the day's account
# rows: {feature: {gap: users}} per account, built in the database (a big day has a hundred
# thousand (feature, account, gap) groups). Parameters: the organisation, the day (the
# account rows'), then the rows' own.
_ACCOUNT_GAPS_INSERT = """
INSERT INTO analytics_dailyaccountrecency (organization_id, date, account_id, gaps)
SELECT %s, %s, account_id, {object_agg}(CAST(feature_id AS TEXT), {as_json}) FROM (
    SELECT feature_id, account_id, {object_agg}(CAST(gap AS TEXT), users) AS gaps FROM {source}
    GROUP BY feature_id, account_id
) a GROUP BY account_id
"""
# PostgreSQL: both counts from one pass over the rows (hashed grouping sets; GROUPING() is 1
# on the segment groups), the account rows inserted by the statement that returns the
# segment groups.
_PG_ACCOUNT_GAPS_SQL = _ACCOUNT_GAPS_INSERT.format(
    object_agg="jsonb_object_agg", as_json="gaps", source="g WHERE per_segment = 0 AND account_id IS NOT NULL"
)
_PG_DAY_GAPS_SQL = f"""
WITH g AS MATERIALIZED (
    SELECT GROUPING(account_id) AS per_segment, feature_id, age_band, gender, account_id, gap, COUNT(*) AS users
    FROM ({_DAY_ROWS_SQL}) d
    GROUP BY GROUPING SETS ((feature_id, age_band, gender, gap), (feature_id, account_id, gap))
), accounts AS ({_PG_ACCOUNT_GAPS_SQL})
SELECT feature_id, age_band, gender, gap, users FROM g WHERE per_segment = 1
"""
# SQLite (embedded-sized days): no grouping sets nor writes inside a WITH; two statements.
_SQLITE_ACCOUNT_GAPS_SQL = _ACCOUNT_GAPS_INSERT.format(
    object_agg="json_group_object",
    # A subquery's JSON is text to SQLite: json() embeds it as an object, not a string.
    as_json="json(gaps)",
    source=f"""(
    SELECT feature_id, account_id, gap, COUNT(*) AS users FROM ({_DAY_ROWS_SQL}) d
    WHERE account_id IS NOT NULL GROUP BY feature_id, account_id, gap
) g""",
)
_SQLITE_DAY_GAPS_SQL = f"""
SELECT feature_id, age_band, gender, gap, COUNT(*) FROM ({_DAY_ROWS_SQL}) d
GROUP BY feature_id, age_band, gender, gap
"""


def _day_gaps(cursor: Any, org_id: int, day: date) -> list[tuple[int, str, str, int, int]]:
    """Write the organisation's account rows of `day` and return its (feature, age band,
    gender, gap, users) groups."""
    ops = connection.ops
    block = block_of(day)
    gap = gap_sql((day - block).days)
    rows_params = [org_id, ops.adapt_datefield_value(block), day_bit(day)]
    account_params = [org_id, ops.adapt_datefield_value(day)]
    if on_postgres():
        cursor.execute(_PG_DAY_GAPS_SQL.replace("{gap}", gap), [*rows_params, *account_params])
    else:
        cursor.execute(_SQLITE_ACCOUNT_GAPS_SQL.replace("{gap}", gap), [*account_params, *rows_params])
        cursor.execute(_SQLITE_DAY_GAPS_SQL.replace("{gap}", gap), rows_params)
    return cursor.fetchall()


def absent_before(gaps: dict[int, int]) -> list[int]:
    """`absent_before` of one feature and day from its users' gaps {days since their last
    use (0: not within RECENCY_DAYS): users}."""
    remaining = sum(gaps.values())
    result = []
    for k in range(RECENCY_DAYS + 1):
        remaining -= gaps.get(k, 0) if k else 0
        result.append(remaining)
    return result


def recency_day_rebuild(cursor: Any, org_id: int, day: date) -> None:
    """Replace the organisation's DailyFeatureRecency, DailyFeatureSegmentRecency,
    DailyAccountRecency, DailySegmentRecency and DailyEventTypeRecency rows of `day` with
    what its bitmasks and its users' profiles say now, and drop the day's stale mark. Run under the bitmask lock
    (`bitmask_steps_lock`), which the rollup's bitmask step holds."""
    for model in (
        DailyFeatureRecency,
        DailyFeatureSegmentRecency,
        DailyAccountRecency,
        DailySegmentRecency,
        DailyEventTypeRecency,
    ):
        model.objects.filter(organization_id=org_id, date=day).delete()
    # Hashed: its groups (19,336 segment and 173,598 account groups on the bench's peak day)
    # are few beside its rows (465,000), which the planner, blind to the gap's spread, expects
    # as many groups; sorted instead they spilled to disk (535 against 355 ms).
    with plans_without(cursor, "enable_sort", "enable_incremental_sort"):
        groups = _day_gaps(cursor, org_id, day)
    gaps: dict[int, Counter[int]] = defaultdict(Counter)
    segment_gaps: dict[tuple[int, str, str], dict[int, int]] = defaultdict(dict)
    for feature_id, age_band, gender, gap, users in groups:
        gaps[feature_id][gap] += users
        segment_gaps[feature_id, age_band, gender][gap] = users
    DailyFeatureRecency.objects.bulk_create(
        DailyFeatureRecency(organization_id=org_id, feature_id=feature_id, date=day, absent_before=absent_before(g))
        for feature_id, g in gaps.items()
    )
    DailyFeatureSegmentRecency.objects.bulk_create(
        DailyFeatureSegmentRecency(
            organization_id=org_id,
            feature_id=feature_id,
            date=day,
            age_band=age_band,
            gender=gender,
            gaps={str(gap): users for gap, users in sorted(g.items())},
        )
        for (feature_id, age_band, gender), g in segment_gaps.items()
    )
    segment_recency_build(cursor, org_id, day)
    event_type_recency_build(cursor, org_id, day)
    FeatureRecencyStale.objects.filter(organization_id=org_id, date=day).delete()


_LATER_MARK_SQL = """
INSERT INTO analytics_featurerecencystale (organization_id, date)
SELECT DISTINCT organization_id, date FROM analytics_dailyfeaturerecency
WHERE organization_id = %s AND date > %s AND date <= %s
ON CONFLICT DO NOTHING
"""


def recency_roll(cursor: Any, org_id: int, day: date, *, bits_changed: bool, people_moved: bool) -> None:
    """The rollup's step for `day`, after its per-feature bitmask step: rebuild the day's rows
    when its bits changed, its users' segments or accounts moved (`people_moved`) or it was marked
    stale, and when the bits changed mark the rolled days whose users' previous visit may
    now differ (up to RECENCY_DAYS later) stale."""
    ops = connection.ops
    if bits_changed or people_moved or FeatureRecencyStale.objects.filter(organization_id=org_id, date=day).exists():
        recency_day_rebuild(cursor, org_id, day)
    if bits_changed:
        last = day + timedelta(days=RECENCY_DAYS)
        cursor.execute(_LATER_MARK_SQL, [org_id, ops.adapt_datefield_value(day), ops.adapt_datefield_value(last)])


# Rolled days with active users but no recency row, or no segment row (per feature or of
# all features), or no event-type row, or account rollups but no account recency row, nor
# mark: rolled or rebuilt by code that predates those rows (workers still on it while
# migration 0017, 0020, 0022, 0023 or 0024 ran), which a read would count as zero for good.
# Marked at the start of every rebuild (one row per organisation and day to look at), so
# they heal.
_UNBUILT_MARK_SQL = """
INSERT INTO analytics_featurerecencystale (organization_id, date)
SELECT o.organization_id, o.date FROM analytics_dailyorgusage o
WHERE o.active_users > 0 {of_org}
  AND (NOT EXISTS (
    SELECT 1 FROM analytics_dailyfeaturerecency r WHERE r.organization_id = o.organization_id AND r.date = o.date)
  OR NOT EXISTS (
    SELECT 1 FROM analytics_dailyfeaturesegmentrecency g
    WHERE g.organization_id = o.organization_id AND g.date = o.date)
  OR NOT EXISTS (
    SELECT 1 FROM analytics_dailysegmentrecency s WHERE s.organization_id = o.organization_id AND s.date = o.date)
  OR NOT EXISTS (
    SELECT 1 FROM analytics_dailyeventtyperecency t WHERE t.organization_id = o.organization_id AND t.date = o.date)
  OR (EXISTS (
    SELECT 1 FROM analytics_dailyaccountusage a
    WHERE a.organization_id = o.organization_id AND a.date = o.date AND a.account_id IS NOT NULL)
  AND NOT EXISTS (
    SELECT 1 FROM analytics_dailyaccountrecency c
    WHERE c.organization_id = o.organization_id AND c.date = o.date)))
ON CONFLICT DO NOTHING
"""

# A rollup run spends at most this long rebuilding stale days (after an upgrade: every rolled
# day, ~0.1 s each on the 10 M-event bench); the rest wait for the next run, newest first, and
# reads over them count from the bitmasks meanwhile. A run inside a web request
# (`aggregate/run`) takes the shorter budget: the worker is killed after GUNICORN_TIMEOUT.
REBUILD_BUDGET_SECONDS = 60.0
REBUILD_BUDGET_SECONDS_WEB = 5.0


def rebuild_budget() -> float:
    """The time a rollup run may spend rebuilding stale days in this process."""
    return REBUILD_BUDGET_SECONDS_WEB if settings.WEB_PROCESS else REBUILD_BUDGET_SECONDS


def recency_stale_rebuild(org_id: int | None = None, *, budget_seconds: float | None = None) -> int:
    """Rebuild the stale days' rows (of one organisation or all), newest first, each in a
    transaction of its own under the organisation's bitmask lock, until `budget_seconds`
    have passed (default `rebuild_budget()`; `math.inf`: all of them). Returns the number of
    days rebuilt."""
    budget = rebuild_budget() if budget_seconds is None else budget_seconds
    with connection.cursor() as cursor:
        cursor.execute(
            _UNBUILT_MARK_SQL.format(of_org="" if org_id is None else "AND o.organization_id = %s"),
            [] if org_id is None else [org_id],
        )
    # An organisation being deleted loses these rows anyway (tenants.org_deletion).
    marks = FeatureRecencyStale.objects.filter(organization__deletion_requested_at__isnull=True).order_by(
        "-date", "organization_id"
    )
    if org_id is not None:
        marks = marks.filter(organization_id=org_id)
    started = time.monotonic()
    pending = list(marks.values_list("organization_id", "date"))
    rebuilt = 0
    for mark_org, day in pending:
        if time.monotonic() - started > budget:
            logger.info("feature recency: %d stale day(s) left for the next rollup run", len(pending) - rebuilt)
            break
        with transaction.atomic(), connection.cursor() as cursor:
            if on_postgres():
                # The day's hashes in memory, as in the rollup (`rollup.rollup_day`).
                cursor.execute("SET LOCAL work_mem = '256MB'")
            bitmask_steps_lock(cursor, mark_org)
            if FeatureRecencyStale.objects.filter(organization_id=mark_org, date=day).exists():
                recency_day_rebuild(cursor, mark_org, day)
        rebuilt += 1
    if rebuilt:
        logger.info("rebuilt the feature recency rows of %d stale day(s)", rebuilt)
    return rebuilt


def _gaps_sql() -> dict[str, str]:
    """SQL over the segment and account rows: a segment row's `gaps` as (key, text value)
    rows (`each`), an account row's features as (key, object) rows (`each_feature`) and the
    gaps of one of them, `f` (`each_of_f`), and a row's day's offset from the range's start,
    a parameter (`offset`)."""
    if on_postgres():
        return {
            "each": "CROSS JOIN LATERAL jsonb_each_text(r.gaps)",
            "each_feature": "CROSS JOIN LATERAL jsonb_each(r.gaps)",
            "each_of_f": "CROSS JOIN LATERAL jsonb_each_text(f.value)",
            "offset": "r.date - CAST(%s AS DATE)",
        }
    return {
        "each": ", json_each(r.gaps)",
        "each_feature": ", json_each(r.gaps)",
        "each_of_f": ", json_each(f.value)",
        "offset": "CAST(julianday(r.date) - julianday(%s) AS INTEGER)",
    }


def _element_sql() -> str:
    """SQL: a row's `absent_before` at the day's offset from the range's start (a parameter)."""
    if on_postgres():
        return "CAST(r.absent_before -> (r.date - CAST(%s AS DATE)) AS INTEGER)"
    offset = "CAST(julianday(r.date) - julianday(%s) AS INTEGER)"
    return f"CAST(json_extract(r.absent_before, '$[' || {offset} || ']') AS INTEGER)"


# The range's stale days, which every read below counts alongside (-1: none of its features).
_STALE_DAYS_SQL = """
SELECT -1, COUNT(*) FROM analytics_featurerecencystale s
WHERE s.organization_id = %s AND s.date >= %s AND s.date <= %s
"""
_USERS_SQL = f"""
SELECT r.feature_id, SUM({{element}}) FROM analytics_dailyfeaturerecency r
WHERE r.organization_id = %s AND r.date >= %s AND r.date <= %s {{of_feature}}
GROUP BY r.feature_id
UNION ALL{_STALE_DAYS_SQL}"""
# A segment row's users counted at its day's offset from the range's start (a parameter
# after the conditions' ones): those not back within that many days ("0": not at all).
_SEGMENT_USERS_SQL = f"""
SELECT r.feature_id, SUM(CAST(e.value AS INTEGER)) FROM analytics_dailyfeaturesegmentrecency r {{each}} e
WHERE r.organization_id = %s AND r.date >= %s AND r.date <= %s {{conditions}}
  AND (e.key = '0' OR CAST(e.key AS INTEGER) > {{offset}})
GROUP BY r.feature_id
UNION ALL{_STALE_DAYS_SQL}"""
# An account row's users, per feature (its keys), counted the same way.
_ACCOUNT_USERS_SQL = f"""
SELECT CAST(f.key AS BIGINT), SUM(CAST(e.value AS INTEGER))
FROM analytics_dailyaccountrecency r {{each_feature}} f {{each_of_f}} e
WHERE r.organization_id = %s AND r.account_id = %s AND r.date >= %s AND r.date <= %s {{of_feature}}
  AND (e.key = '0' OR CAST(e.key AS INTEGER) > {{offset}})
GROUP BY f.key
UNION ALL{_STALE_DAYS_SQL}"""


def recency_feature_users(
    db_alias: str,
    org_id: int,
    start: date,
    end: date,
    feature_id: int | None = None,
    *,
    age_band: str | None = None,
    gender: str | None = None,
    account_id: int | None = None,
) -> dict[int, int] | None:
    """{feature_id: distinct end users within start..end} (of `feature_id` alone when given;
    of the users in the age band and gender, or the account, given when each day's rows
    were built) from the recency rows, in one statement on `db_alias`; None when the range
    is longer than they reach or holds a stale day (then the bitmasks answer)."""
    if (end - start).days > RECENCY_DAYS or end < start:
        return None
    ops = connections[db_alias].ops
    first, last = ops.adapt_datefield_value(start), ops.adapt_datefield_value(end)
    if age_band is None and gender is None and account_id is None:
        of_feature = "" if feature_id is None else "AND r.feature_id = %s"
        params: list[Any] = [first, org_id, first, last, *([] if feature_id is None else [feature_id])]
        sql = _USERS_SQL.format(element=_element_sql(), of_feature=of_feature)
    elif account_id is not None:
        of_feature = "" if feature_id is None else "AND f.key = %s"
        params = [org_id, account_id, first, last, *([] if feature_id is None else [str(feature_id)]), first]
        sql = _ACCOUNT_USERS_SQL.format(of_feature=of_feature, **_gaps_sql())
    else:
        conditions, params = "", [org_id, first, last]
        for column, value in (("feature_id", feature_id), ("age_band", age_band), ("gender", gender)):
            if value is not None:
                conditions += f" AND r.{column} = %s"
                params.append(value)
        params.append(first)
        sql = _SEGMENT_USERS_SQL.format(conditions=conditions, **_gaps_sql())
    with connections[db_alias].cursor() as cursor:
        cursor.execute(sql, [*params, org_id, first, last])
        rows = cursor.fetchall()
    counts = {fid: int(n or 0) for fid, n in rows}
    if counts.pop(-1, 0):
        return None
    return {fid: n for fid, n in counts.items() if n}
