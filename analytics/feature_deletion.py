"""A deleted feature's days are re-rolled: its events and its own rollup rows go with it (the
foreign keys cascade), but the organisation's, the per-user, segment, account and dimension
rows of those days were summed over every feature and still counted its events and users
(usage-summary kept the deleted feature's events beside a feature list without it)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from telemetry.models import Feature
from telemetry.services.storage.dirty_days import days_mark_dirty

from .models import DailyFeatureUsage


def _deleting_features(origin: Any) -> bool:
    """Whether the delete started from features: an organisation's delete takes every row of
    its days with it, and a mark written for it meanwhile would point at a deleted one."""
    if isinstance(origin, QuerySet):
        return origin.model is Feature
    return isinstance(origin, Feature)


def feature_days_mark_dirty(sender: type[Feature], instance: Feature, origin: Any = None, **kwargs: Any) -> None:
    """Before a feature's rows go (pre_delete), mark the past days it has rollup rows for: one
    row per day it had events, read from its feature rollup, never from its raw events."""
    if not _deleting_features(origin):
        return
    days = DailyFeatureUsage.objects.filter(organization_id=instance.organization_id, feature=instance)
    days_mark_dirty(instance.organization_id, days.values_list("date", flat=True))
