"""Raw events over time: PostgreSQL's monthly partitions of the events table, the raw-event
retention (`RAW_EVENT_RETENTION_MONTHS`) and the expiry of the uuid dedupe table.

The events table is partitioned by month of `timestamp` on PostgreSQL (migration 0005): one
partition per UTC month, `telemetry_usageevent_pYYYY_MM`, and a default partition,
`telemetry_usageevent_default`, for rows of a month that has none yet (late events or an
import of an old month, rows written through the ORM). So no write ever fails or waits for
DDL, and the write path costs no extra query. The nightly job keeps the previous, the current
and the next `EVENT_PARTITIONS_AHEAD` months ready and moves whatever the default partition holds into
partitions of its months (`manage.py import_events` does it right after an import); a
partition is created on its own and then attached, which locks the parent table only
against other DDL, never against inserts and reads.

Retention drops whole partitions (instant, no dead rows to vacuum) and keeps the rollups;
SQLite, which has no partitions, deletes the rows. Days before the retention horizon are
never rolled up again (`raw_events_horizon`), or their rollups would be replaced by zeros.
"""

import logging
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from ..models import DirtyDay, EventUuid, UsageEvent

logger = logging.getLogger(__name__)

PARENT = UsageEvent._meta.db_table
DEFAULT = f"{PARENT}_default"
# Any fixed number: creators of partitions queue on it instead of racing on the catalog.
_DDL_LOCK = 0x7E1E_0001
_BOUNDS = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
# Moves of a month's rows before its ATTACH is given up for this run (events of the month
# keep coming into the default partition meanwhile).
_ATTACH_TRIES = 3
# Rows deleted per statement when SQLite expires raw events (short write locks).
_SQLITE_DELETE_CHUNK = 10_000


def month_start(value: date | datetime) -> date:
    """The first day of the UTC month holding `value`."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return value.replace(day=1)


def months_add(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"{PARENT}_p{month:%Y_%m}"


def _instant(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def partitioned() -> bool:
    """Whether the events table is partitioned (PostgreSQL after migration 0005)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def event_partitions() -> dict[date, str]:
    """{first day of the month: partition name} of the events table's partitions, oldest first."""
    if connection.vendor != "postgresql":
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        found = {}
        for name, bound in cursor.fetchall():
            match = _BOUNDS.search(bound or "")
            if match:
                found[month_start(datetime.fromisoformat(match.group(1)))] = name
    return dict(sorted(found.items()))


def default_partition_rows(*, up_to: int) -> int | None:
    """How many rows the default partition holds, counted no further than `up_to` + 1 (more
    than `up_to` is all a caller needs to say, and a full count of a large partition would
    read all of it); None when the events table is not partitioned (SQLite)."""
    if not partitioned():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM (SELECT 1 FROM "{DEFAULT}" LIMIT %s) AS bounded', [up_to + 1])
        return cursor.fetchone()[0]


def event_partitions_ensure(*, months: Iterable[date]) -> list[str]:
    """Create the partitions of `months` (any day of each month) that are missing, moving
    their rows out of the default partition; returns the names created. Runs in the
    caller's transaction when there is one."""
    wanted = sorted({month_start(m) for m in months})
    if not wanted or not partitioned():
        return []
    created: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_DDL_LOCK])
        existing = event_partitions()
        for month in wanted:
            if month in existing:
                continue
            for attempt in range(1, _ATTACH_TRIES + 1):
                try:
                    with transaction.atomic():  # a savepoint: a failed month undoes only itself
                        created.append(_partition_make(cursor, month))
                    break
                except IntegrityError:
                    # An event of the month was written to the default partition between
                    # the move and the ATTACH, which then refuses ("would be violated by
                    # some row"); moving again takes it along. Once given up, its rows
                    # wait in the default partition for the next run.
                    logger.warning("event partition of %s not attached (try %d): rows came in", month, attempt)
    if created:
        logger.info("created event partitions %s", ", ".join(created))
    return created


def _partition_make(cursor: CursorWrapper, month: date) -> str:
    """Create the partition of `month`, move its rows out of the default partition, attach it."""
    name = partition_name(month)
    start, end = _instant(month), _instant(months_add(month, 1))
    cursor.execute(f'CREATE TABLE "{name}" (LIKE "{PARENT}")')
    _rows_move(cursor, name, start, end)
    # Attached once filled: ATTACH locks the parent only against other DDL (SHARE UPDATE
    # EXCLUSIVE), so inserts and reads go on meanwhile.
    cursor.execute(f'ALTER TABLE "{PARENT}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [start, end])
    return name


def _rows_move(cursor: CursorWrapper, name: str, start: datetime, end: datetime) -> None:
    """Move the default partition's rows of [start, end) into the new table `name`."""
    cursor.execute(
        f'WITH moved AS (DELETE FROM "{DEFAULT}" WHERE "timestamp" >= %s AND "timestamp" < %s RETURNING *) '
        f'INSERT INTO "{name}" SELECT * FROM moved',
        [start, end],
    )


def event_partitions_prepare(*, now: datetime | None = None) -> list[str]:
    """The nightly job: the partitions of the previous month, the current one and the next
    `EVENT_PARTITIONS_AHEAD` months ready, and the months the default partition holds rows of given their own
    partitions (rows older than the retention horizon excepted: they are deleted by
    `raw_events_expire`). Returns the names created."""
    if not partitioned():
        return []
    current = month_start(now or timezone.now())
    # The previous month too: late events of its last days come in the first days of this one.
    months = {months_add(current, n) for n in range(-1, settings.EVENT_PARTITIONS_AHEAD + 1)}
    horizon = raw_events_horizon(now=now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT DISTINCT date_trunc('month', "timestamp" AT TIME ZONE 'UTC')::date FROM "{DEFAULT}" """
        )
        months.update(m for (m,) in cursor.fetchall() if horizon is None or _instant(m) >= horizon)
    return event_partitions_ensure(months=months)


def raw_events_horizon(*, now: datetime | None = None) -> datetime | None:
    """The oldest instant whose raw events are kept (the first of a month), or None when
    `RAW_EVENT_RETENTION_MONTHS` is 0 (kept forever)."""
    keep = settings.RAW_EVENT_RETENTION_MONTHS
    if keep <= 0:
        return None
    return _instant(months_add(month_start(now or timezone.now()), -(keep - 1)))


def raw_events_expire(*, now: datetime | None = None) -> dict[str, object]:
    """Remove raw events older than the retention horizon: whole partitions on PostgreSQL,
    rows on SQLite; the rollups stay. Late-data marks of those days go too (re-rolling a day
    without its events would zero its rollups). Returns what was removed."""
    horizon = raw_events_horizon(now=now)
    result: dict[str, object] = {"horizon": horizon and horizon.isoformat(), "dropped": [], "rows_deleted": 0}
    if horizon is None:
        return result
    DirtyDay.objects.filter(date__lt=horizon.date()).delete()
    if partitioned():
        dropped = []
        for month, name in event_partitions().items():
            if _instant(months_add(month, 1)) > horizon:
                break
            with transaction.atomic(), connection.cursor() as cursor:
                # Dropping a partition locks the parent briefly; never queue behind a long
                # read for long (every query waiting on the lock would queue behind it too).
                cursor.execute("SET LOCAL lock_timeout = '5s'")
                cursor.execute(f'DROP TABLE "{name}"')
            dropped.append(name)
        if dropped:
            logger.info("dropped expired event partitions %s", ", ".join(dropped))
        result["dropped"] = dropped
        with connection.cursor() as cursor:
            cursor.execute(f'DELETE FROM "{DEFAULT}" WHERE "timestamp" < %s', [horizon])
            result["rows_deleted"] = cursor.rowcount
        return result
    deleted = 0
    old = UsageEvent.objects.filter(timestamp__lt=horizon)
    while ids := list(old.values_list("pk", flat=True)[:_SQLITE_DELETE_CHUNK]):
        deleted += UsageEvent.objects.filter(pk__in=ids).delete()[0]
    result["rows_deleted"] = deleted
    return result


def event_uuids_expire(*, now: datetime | None = None) -> int:
    """Forget the uuids received more than `EVENT_DEDUPE_DAYS` ago; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.EVENT_DEDUPE_DAYS)
    deleted, _ = EventUuid.objects.filter(received_at__lt=cutoff).delete()
    return deleted
