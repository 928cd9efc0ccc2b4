"""Delivering alert-rule firings like anomalies: one e-mail to the organisation's admins and
one POST per active `alert.fired` webhook (signed JSON, or a Slack message for webhooks in
the Slack format; `insights.webhooks` does the SSRF-safe delivery and the retries)."""

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from tenants.models import Organization

from .. import channels, slack, webhooks
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


def alert_firings_deliver(
    org: Organization, firings: Iterable[AlertFiring] = (), *, unnotified_days: int | None = None
) -> dict[str, int]:
    """Notify about `firings` not yet notified, plus (with `unnotified_days`) every firing of
    that many last days a channel has not covered yet, so a run whose e-mail or enqueue
    failed is picked up by the next one. Each channel is sent and marked on its own
    (`insights.channels`): a failing one is logged and holds the other back no more. A
    firing is marked notified with what was sent once both have it. Returns `{firings,
    emails, webhooks}`: the firings either channel covered."""
    given = list(firings)
    covered, emails, hooks = channels.digest_send(
        org,
        webhooks=("the alert.fired webhooks", lambda: _firings_post(org, given, unnotified_days)),
        email=("the alert e-mail", lambda: _firings_email(org, given, unnotified_days)),
    )
    return {"firings": covered, "emails": emails, "webhooks": hooks}


def _firings_due(
    org: Organization, given: list[AlertFiring], unnotified_days: int | None, *, mark: str
) -> list[AlertFiring]:
    return list(
        unnotified_claimed(AlertFiring, org, given, day_field="day", unnotified_days=unnotified_days, mark=mark)
        .select_related("rule")
        .order_by("-day", "id")
    )


def _firings_marked(due: list[AlertFiring], mark: str, **sent: int) -> None:
    """Mark `due` for the channel, `sent` (`emails=` or `webhooks=`) added to each one's
    `delivery`; those both channels now have get their delivery status."""
    for firing in due:
        firing.delivery = {**firing.delivery, **sent}
    for firing in channels.rows_mark(due, mark):
        reached = firing.delivery.get("emails") or firing.delivery.get("webhooks")
        firing.delivery_status = AlertFiring.Delivery.SENT if reached else AlertFiring.Delivery.NO_RECIPIENTS
    AlertFiring.objects.bulk_update(due, [mark, "notified_at", "delivery", "delivery_status"])


@transaction.atomic  # the rows read are claimed until it ends (`unnotified_claimed`)
def _firings_post(org: Organization, given: list[AlertFiring], unnotified_days: int | None) -> channels.Sent:
    """The webhook channel: (the firings it covered, webhooks)."""
    due = _firings_due(org, given, unnotified_days, mark=channels.WEBHOOKS)
    if not due:
        return set(), 0
    hooks = webhooks.webhooks_send(
        org,
        EVENT,
        lambda: {"organization_id": org.id, "organization": org.name, "firings": [firing_payload(f) for f in due]},
    )
    _firings_marked(due, channels.WEBHOOKS, webhooks=hooks)
    return {f.pk for f in due}, hooks


@transaction.atomic  # the rows read are claimed until it ends (`unnotified_claimed`)
def _firings_email(org: Organization, given: list[AlertFiring], unnotified_days: int | None) -> channels.Sent:
    """The e-mail channel: (the firings it covered, e-mails)."""
    due = _firings_due(org, given, unnotified_days, mark=channels.EMAIL)
    if not due:
        return set(), 0
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
    _firings_marked(due, channels.EMAIL, emails=recipients if emails else 0)
    return {f.pk for f in due}, emails
