"""Handing rolled-up days to the insights engine (anomaly detection, then the alert rules).

Every way a rollup runs hands over the same way: the scheduled and hourly tasks, the
`rollup_range` task, `POST /api/v1/analytics/aggregate/run` and `manage.py rollup`, so late
data backfilled by hand is judged like the nightly run's. By task name and once the
transaction commits (core.task_queue): analytics must not import insights, which sits above
it in the layering, and a request only enqueues (a worker runs it; the embedded mode's
filesystem broker included)."""

from collections.abc import Iterable
from datetime import date, timedelta

from core.task_queue import task_send_on_commit
from tenants.models import Organization

AFTER_ROLLUP_TASK = "insights.after_rollup"


def insights_notify(days_by_org: dict[int, Iterable[date]]) -> int:
    """Send `insights.after_rollup` once per organisation with the days just rolled up.
    Returns the number of messages sent."""
    for org_id, days in sorted(days_by_org.items()):
        task_send_on_commit(AFTER_ROLLUP_TASK, org_id=org_id, dates=[d.isoformat() for d in sorted(set(days))])
    return len(days_by_org)


def range_days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


def insights_notify_range(
    since: date,
    until: date,
    org: Organization | int | None = None,
    *,
    also: dict[int, list[date]] | None = None,
) -> int:
    """`insights_notify` for a range rolled up for `org`, or for every organisation (one
    without events gets the days too: a drop to zero is what the detectors must see), plus
    `also` (other days re-rolled with it, by organisation id)."""
    days = range_days(since, until)
    if org is None:
        org_ids = list(Organization.objects.in_service().values_list("pk", flat=True))
    else:
        org_ids = [org if isinstance(org, int) else org.pk]
    days_by_org: dict[int, set[date]] = {org_id: set(days) for org_id in org_ids}
    for org_id, marked in (also or {}).items():
        days_by_org.setdefault(org_id, set()).update(marked)
    return insights_notify(days_by_org)
