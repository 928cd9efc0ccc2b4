"""Late data: past days whose events changed are marked for re-rollup.

A busy backfill sends every request with events on the same ninety past days: marking them
must not make concurrent requests queue behind each other. A mark is therefore only
inserted when missing (`ON CONFLICT DO NOTHING`: an existing mark is not written, so not
row-locked), and on PostgreSQL the writer takes a *shared* advisory lock per (organisation,
day) until its transaction commits. Writers never wait for each other; the rollup of a day
takes the same locks exclusively (`days_lock`) before it reads the marks and the events, so
it waits for the late events in flight and is then sure to count them, while writers that
come during the roll wait for its commit and insert their mark afresh, which the next run
handles. SQLite's write transactions (IMMEDIATE) already run one at a time.
"""

from collections.abc import Iterable
from datetime import UTC, date, datetime

from django.db import connection
from django.utils import timezone

from ...models import DirtyDay

_TABLE = DirtyDay._meta.db_table
# The lock key of (organisation, day): organisation id × 10⁶ + days since 2000-01-01.
_KEY = "%s::bigint * 1000000 + (d - DATE '2000-01-01')"

_PG_MARK = (
    f"INSERT INTO {_TABLE} (organization_id, date, marked_at) "
    "SELECT %s, d, %s FROM unnest(%s::date[]) AS d "
    f"CROSS JOIN LATERAL (SELECT pg_advisory_xact_lock_shared({_KEY})) AS held "
    "ON CONFLICT (organization_id, date) DO NOTHING"
)
_PG_LOCK = (
    f"SELECT pg_advisory_xact_lock({_KEY.replace('%s', 'o')}) "
    "FROM unnest(%s::bigint[]) AS o, (SELECT %s::date AS d) AS day"
)


def days_mark_dirty(org_id: int, dates: Iterable[date]) -> int:
    """Mark past UTC days of an organisation for re-rollup (today is rolled up hourly
    anyway), in the caller's transaction: the one that stores the late events. Returns
    the number of past days."""
    today = datetime.now(UTC).date()
    past = sorted({d for d in dates if d < today})
    if not past:
        return 0
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # One lock order (ascending days) for every writer: no deadlocks among them.
            cursor.execute(_PG_MARK, [org_id, now, past, org_id])
    else:
        DirtyDay.objects.bulk_create(
            [DirtyDay(organization_id=org_id, date=d, marked_at=now) for d in past], ignore_conflicts=True
        )
    return len(past)


def days_lock(*, day: date, org_ids: Iterable[int]) -> None:
    """For the rollup of `day`, inside its transaction: wait until the late events of those
    organisations being stored now are committed, and hold off new ones until this
    transaction ends (PostgreSQL; a no-op on SQLite)."""
    if connection.vendor != "postgresql":
        return
    ids = sorted(set(org_ids))
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(_PG_LOCK, [ids, day])
