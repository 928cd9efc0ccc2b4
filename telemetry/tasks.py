"""Celery adapters for the raw-event upkeep in `telemetry.services.partitions` (the beat
schedule, usage_platform/celery.py, runs them nightly and `manage.py events_upkeep` by hand)
and for the deletion of large features (`telemetry.services.feature_deletion`)."""

import logging

from celery import shared_task

from .services import feature_deletion, partitions

logger = logging.getLogger(__name__)


@shared_task(name="telemetry.partitions_prepare", time_limit=10 * 60, soft_time_limit=9 * 60)
def partitions_prepare() -> list[str]:
    """Create the coming months' event partitions that are missing."""
    return partitions.event_partitions_prepare()


@shared_task(name="telemetry.raw_events_expire", time_limit=60 * 60, soft_time_limit=55 * 60)
def raw_events_expire() -> dict:
    """Drop the raw events older than RAW_EVENT_RETENTION_MONTHS (rollups are kept)."""
    result = partitions.raw_events_expire()
    logger.info("raw event retention: %s", result)
    return result


@shared_task(name="telemetry.event_uuids_expire", time_limit=30 * 60, soft_time_limit=25 * 60)
def event_uuids_expire() -> int:
    """Forget the uuids received more than EVENT_DEDUPE_DAYS ago."""
    return partitions.event_uuids_expire()


@shared_task(name=feature_deletion.DELETE_TASK, acks_late=True, time_limit=10 * 60, soft_time_limit=9 * 60)
def features_delete(feature_ids: list[int]) -> bool:
    """Delete large features chunk by chunk (`feature_deletion.features_delete_in_chunks`),
    `feature_deletion.RUN_SECONDS` at a time. Returns whether they are gone."""
    done = feature_deletion.features_delete_in_chunks(feature_ids, seconds=feature_deletion.RUN_SECONDS)
    if done:
        logger.info("features %s deleted", feature_ids)
    else:
        features_delete.apply_async(kwargs={"feature_ids": feature_ids})
    return done


@shared_task(name="telemetry.features_deletions_resume", time_limit=60, soft_time_limit=50)
def features_deletions_resume() -> int:
    """Send again each queued feature deletion that no run has renewed for a lease."""
    stalled = feature_deletion.features_deletions_stalled()
    for feature_pk in stalled:
        features_delete.apply_async(kwargs={"feature_ids": [feature_pk]})
    if stalled:
        logger.warning("feature deletions %s had lost their message or worker; sent again", stalled)
    return len(stalled)
