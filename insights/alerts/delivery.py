"""Delivering alert-rule firings like anomalies: one e-mail to the organisation's admins and
one POST per active `alert.fired` webhook (signed JSON, or a Slack message for webhooks in
the Slack format; `insights.webhooks` does the SSRF-safe delivery and the retries)."""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from tenants.models import Organization

from .. import slack, webhooks
from ..models import AlertFiring, Webhook
from ..notify import admins_mail
from ..queries import unnotified_claimed

EVENT = Webhook.Event.ALERT_FIRED


def firing_payload(firing: AlertFiring) -> dict[str, Any]:
    rule = firing.rule
    return {
        "id": firing.id,
        "rule_id": rule.id,
        "rule_name": rule.name,
        "kind": rule.kind,
        "params": rule.params,
        "day": firing.day.isoformat(),
        "window_start": firing.window_start.isoformat(),
        "value": firing.value,
        "threshold": firing.threshold,
        "message": firing.message,
        "details": firing.details,
        "fired_at": firing.fired_at.isoformat(),
    }


@transaction.atomic  # the rows read are claimed until it ends (`unnotified_claimed`)
def alert_firings_deliver(
    org: Organization, firings: Iterable[AlertFiring] = (), *, unnotified_days: int | None = None
) -> dict[str, int]:
    """Notify about `firings` not yet notified, plus (with `unnotified_days`) every firing of
    that many last days still waiting, so a run whose e-mail or enqueue failed is picked up
    by the next one. Marks them notified with what was sent. Returns `{firings, emails,
    webhooks}`."""
    due = list(
        unnotified_claimed(AlertFiring, org, firings, day_field="day", unnotified_days=unnotified_days)
        .select_related("rule")
        .order_by("-day", "id")
    )
    if not due:
        return {"firings": 0, "emails": 0, "webhooks": 0}
    payloads = [firing_payload(f) for f in due]
    # Sent by the worker, outside any request: the link's host is the SITE_URL setting.
    manage_url = settings.SITE_URL + reverse("alert-rule-settings:index")
    lines = [f"- {p['rule_name']} ({p['day']}): {p['message']}" for p in payloads]
    emails, recipients = admins_mail(
        org,
        subject=f"[Usage Platform] {slack.firings_title(payloads)} in {org.name}",
        message="These alert rules fired (one line per rule and day):\n\n"
        + "\n".join(lines)
        + f"\n\nManage them under Settings → Alert rules: {manage_url}",
    )
    hooks = webhooks.webhooks_for_event(org, EVENT)
    for webhook in hooks:
        webhooks.webhook_enqueue(
            webhook, EVENT, {"organization_id": org.id, "organization": org.name, "firings": payloads}
        )
    sent = emails > 0 or bool(hooks)
    AlertFiring.objects.filter(pk__in=[f.pk for f in due]).update(
        notified_at=timezone.now(),
        delivery_status=AlertFiring.Delivery.SENT if sent else AlertFiring.Delivery.NO_RECIPIENTS,
        delivery={"emails": recipients if emails else 0, "webhooks": len(hooks)},
    )
    return {"firings": len(due), "emails": emails, "webhooks": len(hooks)}
