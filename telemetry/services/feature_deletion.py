"""Deleting features (staff, in the Django admin) with every row that points at them: their
events and every per-feature rollup, anomaly and bit, each table's rows found with the
organisation in the condition.

Django's own cascade deletes `WHERE feature_id IN (…)` from each table, a condition that no
index of the events or of the per-user rollups leads (they are led by the organisation), so
PostgreSQL read every tenant's rows: 9 s for one feature at 10 M events, growing with the
installation rather than with the feature (docs/benchmarks.md, 2026-12-05). The feature's
days are marked for re-rollup as before (the `pre_delete` signal analytics listens to), and
the ingestion caches forget the features (`post_delete`)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.signals import post_delete, pre_delete

from ..models import Feature, UsageEvent
from .erasure import pointing_rows_delete


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
        # (the rollup's feature rows would point at a feature that is gone).
        transaction.on_commit(lambda: of_features._raw_delete(using), using=using)
        pointing_rows_delete(Feature, ids, org_ids, skip=(UsageEvent,))
        # A plain DELETE: the ORM's would run every cascade again, each a scan finding nothing.
        Feature.objects.filter(pk__in=ids)._raw_delete(using)
        for feature in doomed:
            post_delete.send(sender=Feature, instance=feature, using=using, origin=features)
    return FeaturesDeleted(len(ids), events)
