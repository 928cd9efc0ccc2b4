"""Late data: past days whose events changed are marked for re-rollup."""

from collections.abc import Iterable
from datetime import UTC, date, datetime

from django.utils import timezone

from ...models import DirtyDay


def days_mark_dirty(org_id: int, dates: Iterable[date]) -> int:
    """Mark past UTC days of an organisation for re-rollup (today is rolled up hourly
    anyway). Re-marking refreshes `marked_at`, so a rollup that started before this mark
    knows the day changed again. Returns the number of days marked."""
    today = datetime.now(UTC).date()
    past = sorted({d for d in dates if d < today})
    if not past:
        return 0
    now = timezone.now()
    DirtyDay.objects.bulk_create(
        [DirtyDay(organization_id=org_id, date=d, marked_at=now) for d in past],
        update_conflicts=True,
        unique_fields=["organization", "date"],
        update_fields=["marked_at"],
    )
    return len(past)
