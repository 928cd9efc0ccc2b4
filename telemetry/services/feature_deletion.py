"""Deleting features (staff, in the Django admin) with every row that points at them: their
events and every per-feature rollup, anomaly and bit, each table's rows found with the
organisation in the condition.

Django's own cascade deletes `WHERE feature_id IN (…)` from each table, a condition that no
index of the events or of the per-user rollups leads (they are led by the organisation), so
PostgreSQL read every tenant's rows: 9 s for one feature at 10 M events, growing with the
installation rather than with the feature (docs/benchmarks.md, 2026-12-05). The feature's
days are marked for re-rollup as before (the `pre_delete` signal analytics listens to), and
the ingestion caches forget the features (`post_delete`).

A feature with more than INLINE_EVENTS events is deleted by a worker instead
(`features_delete_or_queue`): in the admin's request its events' delete would outlast the web
processes' statement timeout (about a million events at 10 M) and roll back, every time. The
worker deletes its events CHUNK_ROWS at a time, each chunk committed on its own, then the rest
and the feature in one transaction as above; the dashboards keep the feature's figures until
then (they read the rollups, which that last transaction marks for re-rollup). The feature's
`deletion_requested_at` is its lease, renewed by every chunk: the beat's
`telemetry.features_deletions_resume` sends a deletion again when nothing renewed it for
DELETION_LEASE (its message lost with the broker, its worker stopped)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from core.task_queue import task_send_on_commit_or_later

from ..models import Feature, UsageEvent
from .erasure import pointing_rows_delete, pointing_rows_refusal_check

# More events than this and a feature is deleted by a worker, its events in chunks.
INLINE_EVENTS = 200_000
# Events a chunk deletes, in a transaction of its own: about a second at 10 M events.
CHUNK_ROWS = 50_000
DELETE_TASK = "telemetry.features_delete"
# A worker's run stops after this long (then sends itself again), and a queued deletion that
# no run has renewed for DELETION_LEASE is sent again (a run renews it with every chunk).
RUN_SECONDS = 4 * 60
DELETION_LEASE = timedelta(minutes=15)


@dataclass(frozen=True)
class FeaturesDeleted:
    features: int
    events: int


def features_delete(features: QuerySet[Feature]) -> FeaturesDeleted:
    """Delete `features` (of any organisations) and every row pointing at them, in one
    transaction; see the module's docstring."""
    using = connection.alias
    with transaction.atomic():
        doomed = list(features.select_related("organization"))
        if not doomed:
            return FeaturesDeleted(0, 0)
        ids = [feature.pk for feature in doomed]
        org_ids = sorted({feature.organization_id for feature in doomed})
        for feature in doomed:
            pre_delete.send(sender=Feature, instance=feature, using=using, origin=features)
        # The (organization, feature, timestamp) index finds them.
        of_features = UsageEvent.objects.filter(organization_id__in=org_ids, feature_id__in=ids)
        events = of_features._raw_delete(using)
        # Events stored by a request that resolved the feature before this delete and
        # committed after its snapshot: swept once this commits, before a rollup meets them
        # (the rollup's feature rows would point at a feature that is gone). Robust: the
        # delete has committed by then, and a failure of the sweep is logged, not answered
        # as an error of the delete.
        transaction.on_commit(lambda: of_features._raw_delete(using), using=using, robust=True)
        pointing_rows_delete(Feature, ids, org_ids, skip=(UsageEvent,))
        # A plain DELETE: the ORM's would run every cascade again, each a scan finding nothing.
        Feature.objects.filter(pk__in=ids)._raw_delete(using)
        for feature in doomed:
            post_delete.send(sender=Feature, instance=feature, using=using, origin=features)
    return FeaturesDeleted(len(ids), events)


def features_delete_or_queue(features: QuerySet[Feature]) -> list[int]:
    """Delete `features` here (`features_delete`) while their events add up to at most
    INLINE_EVENTS; the others are marked (`deletion_requested_at`) and deleted by a worker
    once the current transaction commits (`features_delete_in_chunks`). A feature that a
    relation protects is refused (ProtectedError) before anything goes. Returns the ids of
    those queued."""
    doomed = list(features.order_by("pk").values_list("pk", "organization_id"))
    _refusal_check(doomed)
    budget, queued = INLINE_EVENTS, []
    for feature_pk, org_id in doomed:
        events = _events_upto(feature_pk, org_id, budget + 1)
        if events > budget:
            queued.append(feature_pk)
        else:
            budget -= events
    features_delete(features.exclude(pk__in=queued))
    if queued:
        Feature.objects.filter(pk__in=queued).update(deletion_requested_at=timezone.now())
        task_send_on_commit_or_later(DELETE_TASK, feature_ids=queued)
    return queued


def _events_upto(feature_pk: int, org_id: int, limit: int) -> int:
    """The feature's events, counted up to `limit` (reads at most that many index entries)."""
    return UsageEvent.objects.filter(organization_id=org_id, feature_id=feature_pk).values("pk")[:limit].count()


def _refusal_check(doomed: list[tuple[int, int]]) -> None:
    """A relation that protects one of the (feature, organisation) pairs `doomed` refuses the
    delete before any of their events goes (none does today)."""
    pointing_rows_refusal_check(Feature, [pk for pk, _ in doomed], sorted({org_id for _, org_id in doomed}))


def features_delete_in_chunks(
    feature_ids: list[int], *, chunk_rows: int = CHUNK_ROWS, seconds: float | None = None
) -> bool:
    """Delete the features `feature_ids` that still exist: their events at least `chunk_rows`
    at a time (a timestamp's events all in one chunk), each chunk committed and renewing the
    feature's `deletion_requested_at`, then the fewer than `chunk_rows` left with the features
    (`features_delete`). Stops after `seconds` (None: until done), having deleted at least one
    chunk; returns whether the features are gone (False: call again to carry on). Another run
    on the same features at the same time costs only the waits on each other's rows."""
    deadline = None if seconds is None else time.monotonic() + seconds
    doomed = list(Feature.objects.filter(pk__in=feature_ids).values_list("pk", "organization_id"))
    _refusal_check(doomed)
    for feature_pk, org_id in doomed:
        while (last := _chunk_last_timestamp(feature_pk, org_id, chunk_rows)) is not None:
            _events_delete_until(feature_pk, org_id, last)
            Feature.objects.filter(pk=feature_pk).update(deletion_requested_at=timezone.now())
            if deadline is not None and time.monotonic() > deadline:
                return False
    features_delete(Feature.objects.filter(pk__in=feature_ids))
    return True


def _chunk_last_timestamp(feature_pk: int, org_id: int, chunk_rows: int) -> datetime | None:
    """The timestamp of the feature's `chunk_rows`-th oldest event (None: it has fewer), read
    from the (organization, feature, timestamp) index of each monthly partition in order."""
    events = UsageEvent.objects.filter(organization_id=org_id, feature_id=feature_pk).order_by("timestamp")
    return next(iter(events.values_list("timestamp", flat=True)[chunk_rows - 1 : chunk_rows]), None)


def _events_delete_until(feature_pk: int, org_id: int, last: datetime) -> int:
    """The feature's events up to `last` deleted and committed: an index range of the
    (organization, feature, timestamp) index in the partitions up to `last`'s month."""
    with transaction.atomic():
        events = UsageEvent.objects.filter(organization_id=org_id, feature_id=feature_pk, timestamp__lte=last)
        return events._raw_delete(events.db)


def features_deletions_stalled() -> list[int]:
    """The features whose queued deletion no run has renewed for DELETION_LEASE (its message
    lost, its worker stopped), each renewed now: the ones to send again."""
    now = timezone.now()
    stalled = list(Feature.objects.filter(deletion_requested_at__lt=now - DELETION_LEASE).values_list("pk", flat=True))
    Feature.objects.filter(pk__in=stalled).update(deletion_requested_at=now)
    return stalled
