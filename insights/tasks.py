"""Celery adapters: take ids, call a service, retry only what is transient.

`insights.after_rollup` is sent by name by the analytics rollup tasks (analytics never
imports insights); the nightly narrative and export entries are in usage_platform/celery.py.
"""

import logging
from datetime import date, timedelta
from typing import Any

from celery import shared_task
from django.utils import timezone

from core.db_routing import replica_reads_run
from core.task_queue import task_send_on_commit, task_send_or_later
from tenants.models import Organization

from . import narrative, notify, services, webhooks
from .alerts.tasks import ALERT_RULES_TASK
from .models import Webhook

logger = logging.getLogger(__name__)


@shared_task(name="insights.after_rollup", time_limit=600, soft_time_limit=540)
def after_rollup(org_id: int, dates=None) -> dict:
    """Detect anomalies up to the latest complete day the rollup touched, then alert.

    `dates` are ISO days the rollup (re)computed; today is ignored (partial). The run
    covers the default week back from the latest of them, or from the latest complete
    day when no dates are given; a late-data day older than a week widens the run."""
    org = Organization.objects.in_service().filter(pk=org_id).first()
    if org is None:
        logger.info("after_rollup: organisation %s is gone or being deleted", org_id)
        return {"anomalies": 0, "alerts": 0}
    today = timezone.now().date()
    days = sorted({date.fromisoformat(str(d)[:10]) for d in (dates or [])})
    days = [d for d in days if d < today]
    if days:
        end = days[-1]
        span = max(services.DETECT_DAYS, (end - days[0]).days + 1)
    else:
        end, span = None, services.DETECT_DAYS
    # The detectors read the rollups on the replica, once it has replayed the rollup that sent
    # this task (core.db_routing); the alerts read the anomalies just written, on the primary.
    created = replica_reads_run(lambda: services.anomalies_detect(org, end=end, days=span), org_id=org.pk)
    if days or not dates:
        # Alert rules judge complete days; an hourly run of today alone has none to judge.
        # Queued before the anomaly digest: the rules are judged only on the days handed over
        # here, so a digest that fails (SMTP down) must not cost them these days.
        task_send_on_commit(ALERT_RULES_TASK, org_id=org.pk, dates=[d.isoformat() for d in days])
    sent = notify.alerts_send(org, created, unnotified_days=span + 1)
    return {"anomalies": len(created), "alerts": sent["anomalies"]}


@shared_task(name=webhooks.DELIVER_TASK, acks_late=True, time_limit=120, soft_time_limit=100)
def deliver_webhook(delivery_pk: int | None = None, **sent_before_the_outbox: Any) -> dict:
    """One delivery attempt: its queued row claimed, POSTed, its outcome recorded; a
    transient failure queues the next attempt, due after 30 s, 60 s, 120 s, …
    (`webhooks.webhook_deliver` stops at WEBHOOK_MAX_ATTEMPTS). The next attempt is a new
    message rather than Celery's retry, which under eager mode with propagation raises into
    the caller instead of trying again: one path for a worker and an eager run alike.
    A message queued by the release before the outbox (webhook_id, event, payload, attempt,
    delivery_id) is queued as a row first."""
    if delivery_pk is None:
        delivery_pk = webhooks.attempt_queue_sent_before(**sent_before_the_outbox)
        if delivery_pk is None:
            return {"delivered": False, "reason": "webhook inactive or deleted"}
    delivery = webhooks.attempt_claim(delivery_pk)
    if delivery is None:
        return {"delivered": False, "reason": "made already, being made, or the webhook is paused or deleted"}
    following = webhooks.webhook_deliver(delivery)
    if following is not None:
        logger.info(
            "webhook %s: attempt %s failed (%s); attempt %s in %s s",
            delivery.webhook_id,
            delivery.attempt,
            delivery.error,
            following.attempt,
            webhooks.backoff_seconds(delivery.attempt),
        )
        task_send_or_later(
            webhooks.DELIVER_TASK,
            countdown=webhooks.backoff_seconds(delivery.attempt),
            delivery_pk=following.pk,
        )
    return {
        "delivered": delivery.delivered_at is not None,
        "attempt": delivery.attempt,
        "status_code": delivery.status_code,
    }


@shared_task(name="insights.webhook_deliveries_resend", time_limit=120, soft_time_limit=100)
def webhook_deliveries_resend() -> int:
    """Send again the attempts whose message was lost (`webhooks.deliveries_resend`)."""
    due = webhooks.deliveries_resend()
    for delivery_pk, countdown in webhooks.attempts_due_in(due):
        deliver_webhook.apply_async(kwargs={"delivery_pk": delivery_pk}, countdown=countdown)
    if due:
        logger.warning("webhook outbox: %d attempt(s) had lost their message or worker; sent again", len(due))
    return len(due)


@shared_task(name="insights.refresh_org", time_limit=120, soft_time_limit=100)
def refresh_org(org_id: int) -> str:
    org = Organization.objects.in_service().filter(pk=org_id).first()
    if org is None:
        return "gone"
    return replica_reads_run(lambda: narrative.insight_current(org, refresh=True), org_id=org.pk).source


@shared_task(name="insights.refresh_all", time_limit=300, soft_time_limit=270)
def refresh_all() -> int:
    """Fan out one narrative refresh per organisation."""
    ids = list(Organization.objects.in_service().values_list("id", flat=True))
    for org_id in ids:
        refresh_org.delay(org_id)
    return len(ids)


@shared_task(name="insights.export_daily_org", time_limit=120, soft_time_limit=100)
def export_daily_org(org_id: int, day: str) -> int:
    org = Organization.objects.in_service().filter(pk=org_id).first()
    if org is None:
        return 0
    return replica_reads_run(lambda: notify.export_daily(org, date.fromisoformat(day)), org_id=org.pk)


@shared_task(name="insights.export_daily_all", time_limit=300, soft_time_limit=270)
def export_daily_all(day: str | None = None) -> int:
    """Fan out yesterday's (or `day`'s) KPI export to every organisation with an
    active `export.daily` webhook."""
    day = day or (timezone.now().date() - timedelta(days=1)).isoformat()
    org_ids = sorted(
        {w.organization_id for w in Webhook.objects.filter(active=True) if "export.daily" in (w.events or [])}
    )
    for org_id in org_ids:
        export_daily_org.delay(org_id, day)
    return len(org_ids)
