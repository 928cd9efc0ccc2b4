"""Daily rollups: raw events of one UTC day → DailyFeatureUsage, DailyOrgUsage, the per-user
rows (DailyUserUsage, DailyUserFeatureUsage, `rollup_users`) and, from those, the person
segments (DailySegmentUsage) and the accounts (DailyAccountUsage and its per-block feature
bitmasks, `rollup_accounts`); the active-day bitmasks (`active_days`), the weekly feature
masks (`feature_masks`) and the per-feature recency rows (`recency`) from the per-user rows.

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

On PostgreSQL the event dimensions (`rollup_dimensions.event_dimensions_build`: a second
pass over the day's events, ~a third of a big day's work) run on a second connection in a
transaction of their own beside the other steps (`side_lane`), so that a day's roll takes
two cores; set ROLLUP_SIDE_CONNECTION=false for one connection. The rows are the same
either way; the two commit separately (docs/decisions.md, 2026-12-04).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import overload

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Max, Min
from django.utils import timezone

from core.days import day_start
from core.db_routing import primary_pin
from telemetry.models import DirtyDay, UsageEvent
from telemetry.services.partitions import raw_events_horizon
from telemetry.services.storage import days_lock
from tenants.models import Organization

from .active_days import (
    block_events_keep,
    rollup_active_days,
    rollup_event_type_active_days,
    rollup_feature_active_days,
)
from .feature_masks import day_masks, rollup_feature_masks
from .models import DailyFeatureUsage, DailyOrgUsage, DailySegmentUsage
from .recency import recency_roll, recency_stale_rebuild
from .rollup_accounts import account_feature_days_roll, account_rows_replace
from .rollup_dimensions import event_dimensions_build, user_dimensions_build
from .rollup_people import feature_people_build, feature_people_drop, people_moved
from .rollup_sql import DAY_KEYS, DAY_SQL, DAY_TABLE, FEATURE_SQL, ORG_SQL, SEGMENT_SQL, session_key_sql
from .rollup_users import (
    per_user_groups_build,
    per_user_groups_drop,
    per_user_rows_write,
)
from .side_lane import SideLane
from .temp_tables import temp_table_fill, temp_tables_release

logger = logging.getLogger(__name__)

GENERATION_KEY = "analytics:generation:{org_id}"

# An organisation or its id; None: every organisation.
OrgRef = Organization | int | None


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


def rollup_day(day: date, org: OrgRef = None, *, recheck_bitmasks: bool = False, if_marked: bool = False) -> int:
    """Recompute `day` (a UTC day) for one organisation (an Organization or its id) or all.
    Returns the number of feature and organisation rows written (the per-user rows are
    written too but not counted). The per-feature active-day bits are brought in line only
    where the day's per-feature rows changed, or everywhere with `recheck_bitmasks` (the
    repair after rows were written outside the rollup, docs/decisions.md 2026-12-02).
    `if_marked`: only while the day still has a late-data mark once its lock is held."""
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
        org_ids = Organization.objects.in_service().order_by("pk").values_list("pk", flat=True)
        return sum(rollup_day(day, pk, recheck_bitmasks=recheck_bitmasks, if_marked=if_marked) for pk in org_ids)
    computed_at = timezone.now()
    window = [connection.ops.adapt_datetimefield_value(day_start(d)) for d in (day, day + timedelta(days=1))]
    marks = DirtyDay.objects.filter(date=day, organization_id=org_id)
    # Another connection would not see a caller's uncommitted events.
    beside = settings.ROLLUP_SIDE_CONNECTION and connection.vendor == "postgresql" and not connection.in_atomic_block

    with transaction.atomic(), connection.cursor() as cursor:
        # Late events of this day being stored right now are waited for, and those that
        # come during the run wait for its commit (telemetry.services.storage.dirty_days):
        # the marks read here come with their events, a mark set from here on is kept.
        days_lock(day=day, org_ids=[org_id])
        handled = list(marks.values_list("pk", "marked_at"))
        if if_marked and not handled:
            # Rolled since the marks were listed, by a run beside this one (an hourly run
            # still working through a backfill's marks when the next starts) or by hand.
            return 0
        _tune(cursor)
        # The event dimensions read only the day's events and the end users and write only
        # their own rows: on PostgreSQL they are rolled on a second connection meanwhile,
        # once the day's lock is held here (two rolls of a day never overlap).
        event_dimensions = partial(event_dimensions_build, org_id=org_id, day=day, window=window)
        side = SideLane.start(event_dimensions, beside=beside, setup=_tune)
        try:
            written = _rollup_day_in(
                cursor,
                side,
                org_id=org_id,
                day=day,
                window=window,
                computed_at=computed_at,
                recheck_bitmasks=recheck_bitmasks,
            )
        except BaseException:
            side.abandon()
            raise
        for mark_id, marked_at in handled:
            DirtyDay.objects.filter(pk=mark_id, marked_at=marked_at).delete()
    _bump_generation([org_id])
    # Until the read replica has replayed this rollup, this organisation's figures are read
    # on the primary, or the new cache generation would be filled with the old figures.
    primary_pin(org_ids=[org_id])
    return max(written, 0)


def _tune(cursor: CursorWrapper) -> None:
    """The settings of a rollup transaction on PostgreSQL."""
    if connection.vendor != "postgresql":
        return
    # Keep a million-event day's grouping and distinct-count sorts in memory.
    cursor.execute("SET LOCAL work_mem = '256MB'")
    # The rollup is derived data, re-runnable from the raw events: its commit need not
    # wait for the WAL flush (docs/decisions.md, 2026-12-01). A server crash in the
    # fraction of a second after it loses the run as if it had not happened; the
    # day's late-data marks come back with it and are re-rolled by the hourly job.
    cursor.execute("SET LOCAL synchronous_commit = off")


def _rollup_day_in(
    cursor: CursorWrapper,
    side: SideLane[list[tuple[int, str]]],
    *,
    org_id: int,
    day: date,
    window: Sequence[object],
    computed_at: datetime,
    recheck_bitmasks: bool,
) -> int:
    """Every step of `rollup_day` on its cursor inside its transaction, the event dimensions
    (`side`) waited for or run on the way; `window`: the day's [start, end) as adapted
    timestamps. Returns the number of feature and organisation rows written."""
    ops = connection.ops
    now = ops.adapt_datetimefield_value(computed_at)
    day_param = ops.adapt_datefield_value(day)
    # The day's groups live until the end of the transaction: a failure rolls their
    # creation back with everything else.
    temp_table_fill(cursor, DAY_TABLE, DAY_SQL.format(session_key=session_key_sql()), [org_id, *window, org_id])
    # Statistics of the groups' keys, which the groupings and lookups below are planned on:
    # the planner then sizes their hashes (the other columns' would cost time, ~40 % of
    # the ANALYZE, and serve nothing).
    cursor.execute(f"ANALYZE {DAY_TABLE}{DAY_KEYS if connection.vendor == 'postgresql' else ''}")
    per_user_groups_build(cursor, org_id)
    feature_people_build(cursor)
    written = 0
    for sql in (FEATURE_SQL, ORG_SQL):
        cursor.execute(sql, [day_param, now, now])
        written += cursor.rowcount
    # The weekly totals take the day's change: its per-user rows before and after. The
    # per-user rows are not part of the count returned, which stays the number of
    # dashboard rows (the API's figure).
    block_events_keep(cursor, org_id, day)
    feature_rows = per_user_rows_write(cursor, org_id, day_param, now)
    temp_tables_release(cursor, DAY_TABLE)
    stale: dict[str, object] = {"date": day, "computed_at__lt": computed_at, "organization_id": org_id}
    DailyFeatureUsage.objects.filter(**stale).delete()
    DailyOrgUsage.objects.filter(**stale).delete()
    # A roll that added features to users' days ORs them into their week in the same write.
    masks = day_masks(cursor, org_id, day) if feature_rows.inserted else None
    rollup_active_days(cursor, org_id, day, masks=masks)
    bits_changed = rollup_feature_active_days(
        cursor,
        org_id,
        day,
        rows_deleted=feature_rows.deleted or recheck_bitmasks,
        rows_inserted=feature_rows.inserted or recheck_bitmasks,
    )
    rollup_feature_masks(cursor, org_id, day, rows_deleted=feature_rows.deleted or recheck_bitmasks)
    # The recency rows split by segment and account too: a user whose age, gender or
    # account changed since the day's last roll moves there with them.
    moved = recheck_bitmasks or people_moved(cursor, org_id, day_param)
    # Segments are few per day: replaced whole, after the per-user rows are final.
    DailySegmentUsage.objects.filter(organization_id=org_id, date=day).delete()
    cursor.execute(SEGMENT_SQL, [day_param, org_id, day_param])
    user_dimensions_build(cursor, org_id=org_id, day=day)
    # The event dimensions' pairs set the per-event-type bits here, in this transaction with
    # the other bitmasks and the recency rows that follow them.
    type_bits_changed = rollup_event_type_active_days(cursor, org_id, day, pairs=side.result(cursor))
    recency_roll(cursor, org_id, day, bits_changed=bits_changed or type_bits_changed, people_moved=moved)
    account_rows_replace(cursor, org_id, day_param)
    account_feature_days_roll(cursor, org_id, day)
    feature_people_drop(cursor)
    per_user_groups_drop(cursor)
    return written


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
    # An organisation being deleted loses these rows anyway (tenants.org_deletion).
    marks = list(
        DirtyDay.objects.filter(organization__deletion_requested_at__isnull=True)
        .order_by("date")
        .values_list("organization_id", "date")
    )
    for org_id, day in marks:
        rollup_day(day, org_id, if_marked=True)
    recency_stale_rebuild()
    if marks:
        logger.info("re-rolled %d dirty (organisation, day) pairs", len(marks))
    return len(marks)
