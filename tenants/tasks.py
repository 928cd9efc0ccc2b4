"""Celery adapters for the organisation deletion in `tenants.org_deletion`: the run the admin
and the beat entry `organization-deletions-resume` (usage_platform/celery.py) send."""

from datetime import datetime

from celery import shared_task

from core.task_queue import task_send_on_commit_or_later

from . import org_deletion

RESUME_TASK = "tenants.organization_deletions_resume"


@shared_task(name=org_deletion.DELETE_TASK, time_limit=15 * 60, soft_time_limit=14 * 60)
def organization_delete(org_id: int, lease: str | None = None) -> dict:
    """One run of an organisation's deletion (RUN_SECONDS); a run out of time sends the
    next with its lease, behind whatever else was queued meanwhile."""
    run = org_deletion.organization_delete_run(org_id, lease=datetime.fromisoformat(lease) if lease else None)
    if run.state == "paused" and run.lease is not None:
        task_send_on_commit_or_later(org_deletion.DELETE_TASK, org_id=org_id, lease=run.lease.isoformat())
    return {"org_id": org_id, "state": run.state, "rows": run.rows, "total": run.total}


@shared_task(name=RESUME_TASK, time_limit=60, soft_time_limit=50)
def organization_deletions_resume() -> list[int]:
    """A run for every deletion no run is at work on: its task was lost (a broker out of
    reach) or its worker died; the run carries on from the rows left."""
    stalled = org_deletion.deletions_stalled()
    for org_id in stalled:
        task_send_on_commit_or_later(org_deletion.DELETE_TASK, org_id=org_id)
    return stalled
