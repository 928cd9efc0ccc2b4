"""Celery adapter: evaluate an organisation's alert rules on the days a rollup touched,
then deliver what fired. Sent by name by `insights.after_rollup` once its transaction commits
(core.task_queue)."""

import logging
from datetime import date

from celery import shared_task
from django.utils import timezone

from tenants.models import Organization

from .delivery import alert_firings_deliver
from .evaluate import LOOKBACK_DAYS, alert_rules_evaluate, days_to_evaluate

logger = logging.getLogger(__name__)

ALERT_RULES_TASK = "insights.alert_rules_evaluate"


@shared_task(name=ALERT_RULES_TASK, time_limit=300, soft_time_limit=270)
def alert_rules_evaluate_task(org_id: int, dates: list[str] | None = None) -> dict:
    org = Organization.objects.in_service().filter(pk=org_id).first()
    if org is None:
        logger.info("alert_rules_evaluate: organisation %s is gone or being deleted", org_id)
        return {"fired": 0, "delivered": 0}
    days = days_to_evaluate((date.fromisoformat(str(d)[:10]) for d in dates or []), today=timezone.now().date())
    fired = alert_rules_evaluate(org, days)
    sent = alert_firings_deliver(org, fired, unnotified_days=LOOKBACK_DAYS + 1)
    return {"fired": len(fired), "delivered": sent["firings"]}
