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
then (they read the rollups, which that last transaction marks for re-rollup)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete

from core.task_queue import task_send_on_commit_or_later

from ..models import Feature, UsageEvent
from .erasure import pointing_rows_delete

# More events than this and a feature is deleted by a worker, its events in chunks.
INLINE_EVENTS = 200_000
# Events a chunk deletes, in a transaction of its own: well under a second at 10 M events.
CHUNK_ROWS = 50_000
DELETE_TASK = "telemetry.features_delete"


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
    """Delete `features` here (`features_delete`), except those with more than INLINE_EVENTS
    events, which a worker deletes once the current transaction commits
    (`features_delete_in_chunks`). Returns the ids of those queued."""
    large = [feature.pk for feature in features.only("pk", "organization_id") if _events_over(feature, INLINE_EVENTS)]
    features_delete(features.exclude(pk__in=large))
    if large:
        task_send_on_commit_or_later(DELETE_TASK, feature_ids=large)
    return large


def _events_over(feature: Feature, limit: int) -> bool:
    """Whether `feature` has more than `limit` events (reads at most limit + 1 index entries)."""
    events = UsageEvent.objects.filter(organization_id=feature.organization_id, feature_id=feature.pk)
    return events.values("pk")[limit : limit + 1].exists()


def features_delete_in_chunks(
    feature_ids: list[int], *, chunk_rows: int = CHUNK_ROWS, seconds: float | None = None
) -> bool:
    """Delete the features `feature_ids` that still exist: their events `chunk_rows` at a
    time, each chunk committed, then the rest with the features (`features_delete`). Stops
    after `seconds` (None: until done), having deleted at least one chunk; returns whether
    the features are gone (False: call again to carry on)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    for feature_pk, org_id in Feature.objects.filter(pk__in=feature_ids).values_list("pk", "organization_id"):
        while _events_chunk_delete(feature_pk, org_id, chunk_rows) == chunk_rows:
            if deadline is not None and time.monotonic() > deadline:
                return False
    features_delete(Feature.objects.filter(pk__in=feature_ids))
    return True


def _events_chunk_delete(feature_pk: int, org_id: int, chunk_rows: int) -> int:
    """Up to `chunk_rows` of the feature's events deleted and committed; how many. Found by
    the (organization, feature, timestamp) index; on PostgreSQL each named by its primary
    key (id, timestamp), so that every monthly partition is not probed for each id."""
    table = connection.ops.quote_name(UsageEvent._meta.db_table)
    key = '"id", "timestamp"' if connection.vendor == "postgresql" else '"id"'
    sql = (
        f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table}"
        ' WHERE "organization_id" = %s AND "feature_id" = %s LIMIT %s)'
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [org_id, feature_pk, chunk_rows])
        return cursor.rowcount
