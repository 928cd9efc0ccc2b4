"""Erasing end users (a person asking to be forgotten): their raw events, their profile and
every per-user rollup row go at once; the past days they were active are marked for
re-rollup (`DirtyDay`), so the next rollup recomputes the organisation's, features' and
segments' figures without them. Nothing is kept that names them."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import TruncDate

from ..models import EndUser, UsageEvent
from .storage.dirty_days import days_mark_dirty


@dataclass(frozen=True)
class Erased:
    end_users: int
    events: int
    days_to_reroll: int


def end_users_erase(users: QuerySet[EndUser]) -> Erased:
    """Erase `users` (of any organisations) and their events; see the module's docstring."""
    with transaction.atomic():
        ids = list(users.values_list("pk", flat=True))
        if not ids:
            return Erased(0, 0, 0)
        events = UsageEvent.objects.filter(end_user_id__in=ids)
        days: dict[int, set[date]] = defaultdict(set)
        for org_id, day in events.annotate(day=TruncDate("timestamp")).values_list("organization_id", "day").distinct():
            days[org_id].add(day)
        # Nothing points at an event: Django deletes them in one statement, reading no rows.
        deleted_events, _ = events.delete()
        marked = sum(days_mark_dirty(org_id, org_days) for org_id, org_days in days.items())
        # The per-user rollup rows go with their end user (on_delete=CASCADE).
        EndUser.objects.filter(pk__in=ids).delete()
    return Erased(len(ids), deleted_events, marked)
