"""Alert firings delivered like anomalies: an e-mail to the admins, a signed JSON POST per
`alert.fired` webhook and a Slack-compatible message for Slack-format webhooks, to a real
receiver on localhost; nothing for webhooks of other events or organisations; the SSRF
rule holds for these deliveries too."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from analytics.models import DailyOrgUsage
from insights import slack, webhooks
from insights.alerts import delivery, evaluate, rules
from insights.models import AlertFiring, Webhook, WebhookDelivery
from insights.tests.helpers import StubServer
from insights.tests.test_webhooks import verify_like_the_readme
from tenants.models import Role, User

pytestmark = pytest.mark.django_db


def _fire(org, *, events=5, name="Quiet day"):
    day = timezone.now().date() - timedelta(days=1)
    DailyOrgUsage.objects.create(organization=org, date=day, event_count=events, active_users=1, sessions=1)
    rules.alert_rule_create(
        org, name=name, kind="metric_threshold", params={"metric": "events", "op": "below", "value": 100}
    )
    return evaluate.alert_rules_evaluate(org, [day])


def test_signed_json_and_slack_deliveries(settings, org, other_org, mailoutbox, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {"ok": True}, 0)]) as receiver:
        signed = webhooks.webhook_create(org, url=f"{receiver.url}/signed", events=["alert.fired"])
        chat = webhooks.webhook_create(org, url=f"{receiver.url}/slack", events=["alert.fired"], format="slack")
        webhooks.webhook_create(org, url=f"{receiver.url}/anomalies-only", events=["anomaly.created"])
        webhooks.webhook_create(other_org, url=f"{receiver.url}/theirs", events=["alert.fired"])
        fired = _fire(org)
        # Webhook deliveries are sent once the transaction commits (core.task_queue).
        with django_capture_on_commit_callbacks(execute=True):
            sent = delivery.alert_firings_deliver(org, fired)
    assert sent == {"firings": 1, "emails": 1, "webhooks": 2}
    by_path = {path: (headers, body) for path, headers, body in receiver.requests}
    assert set(by_path) == {"/signed", "/slack"}

    headers, body = by_path["/signed"]
    assert verify_like_the_readme(signed.secret, body, headers)
    assert headers["X-Event"] == "alert.fired"
    document = json.loads(body)
    assert document["event"] == "alert.fired"
    (payload,) = document["data"]["firings"]
    assert payload["rule_name"] == "Quiet day" and payload["value"] == 5.0 and payload["threshold"] == 100.0
    assert payload["kind"] == "metric_threshold" and "below 100" in payload["message"]

    headers, body = by_path["/slack"]
    message = json.loads(body)
    assert set(message) == {"text", "blocks"}
    assert f"1 alert from rule “Quiet day” in {org.name}" in message["text"]
    assert message["blocks"][0]["type"] == "header"
    sections = [b for b in message["blocks"] if b["type"] == "section"]
    assert len(sections) == 1 and sections[0]["text"]["type"] == "mrkdwn"
    assert "*Quiet day*" in sections[0]["text"]["text"]
    # Slack ignores the signature, but it is there and covers the body.
    assert headers["X-Signature"] == webhooks.sign(chat.secret, body)

    firing = AlertFiring.objects.get()
    assert firing.notified_at is not None and firing.delivery_status == "sent"
    assert firing.delivery == {"emails": 1, "webhooks": 2}
    assert len(mailoutbox) == 1 and "Quiet day" in mailoutbox[0].body
    assert mailoutbox[0].to == [User.objects.get(organization=org, role=Role.ADMIN).email]
    # Delivered once: the next run has nothing left.
    assert delivery.alert_firings_deliver(org, fired, unnotified_days=8)["firings"] == 0


def test_slack_message_is_cut_below_slacks_block_limit():
    firings = [{"rule_name": f"r{i}", "day": "2026-11-29", "message": "m"} for i in range(60)]
    message = slack.slack_message("alert.fired", {"organization": "Acme", "firings": firings})
    assert len(message["blocks"]) <= 50
    assert message["blocks"][-2]["elements"][0]["text"] == "…and 40 more."
    for event, data in (("anomaly.created", {"anomalies": [{"metric": "events"}]}), ("export.daily", {})):
        shaped = slack.slack_message(event, data)
        assert set(shaped) == {"text", "blocks"} and shaped["text"]


def test_subject_and_header_count_alerts_and_rules(org, mailoutbox):
    """A firing is one rule on one day: several days of two rules are "N alerts from 2 rules"."""
    today = timezone.now().date()
    days = [today - timedelta(days=n) for n in (1, 2, 3)]
    for day in days:
        DailyOrgUsage.objects.create(organization=org, date=day, event_count=5, active_users=1, sessions=1)
    for name in ("Quiet day", "Very quiet day"):
        rules.alert_rule_create(
            org, name=name, kind="metric_threshold", params={"metric": "events", "op": "below", "value": 100}
        )
    fired = evaluate.alert_rules_evaluate(org, days)
    delivery.alert_firings_deliver(org, fired)
    assert mailoutbox[0].subject == f"[Usage Platform] 6 alerts from 2 rules in {org.name}"
    payloads = [delivery.firing_payload(f) for f in fired]
    header = slack.slack_message("alert.fired", {"organization": org.name, "firings": payloads})["blocks"][0]
    assert header["text"]["text"] == f"6 alerts from 2 rules in {org.name}"
    one_rule = [p for p in payloads if p["rule_name"] == "Quiet day"]
    assert slack.firings_title(one_rule) == "3 alerts from rule “Quiet day”"
    assert slack.firings_title(one_rule[:1]) == "1 alert from rule “Quiet day”"


def test_email_links_to_the_alert_rules_tab(settings, org, mailoutbox):
    settings.SITE_URL = "https://usage.example.com"
    delivery.alert_firings_deliver(org, _fire(org))
    assert "Settings → Alert rules: https://usage.example.com/settings/alert-rules/" in mailoutbox[0].body


def test_undelivered_firings_are_picked_up_by_the_next_run(org, mailoutbox):
    _fire(org)
    assert AlertFiring.objects.get().notified_at is None
    sent = delivery.alert_firings_deliver(org, unnotified_days=8)
    assert sent["firings"] == 1 and len(mailoutbox) == 1


def test_no_recipients_is_recorded(org):
    User.objects.filter(organization=org).update(is_active=False)
    delivery.alert_firings_deliver(org, _fire(org))
    assert AlertFiring.objects.get().delivery_status == "no_recipients"


def test_delivery_refuses_private_addresses(settings, org, django_capture_on_commit_callbacks):
    # Created while private addresses were allowed, delivered once they no longer are.
    settings.WEBHOOK_ALLOW_PRIVATE = True
    hook = webhooks.webhook_create(org, url="http://127.0.0.1:9/hook", events=["alert.fired"], format="slack")
    settings.WEBHOOK_ALLOW_PRIVATE = False
    fired = _fire(org)
    with django_capture_on_commit_callbacks(execute=True):
        delivery.alert_firings_deliver(org, fired)
    attempt = WebhookDelivery.objects.get(webhook=hook)
    assert attempt.error.startswith("refused") and attempt.delivered_at is None


def test_webhook_format_in_the_api(admin_client):
    url = "/api/v1/org/webhooks"
    target = "https://93.184.216.34/hooks/slack"
    created = admin_client.post(url, {"url": target, "events": ["alert.fired"], "format": "slack"}, format="json")
    assert created.status_code == 201 and created.json()["format"] == "slack"
    plain = admin_client.post(url, {"url": target, "events": ["alert.fired"]}, format="json").json()
    assert plain["format"] == "json"
    bad = admin_client.post(url, {"url": target, "events": ["alert.fired"], "format": "xml"}, format="json")
    assert bad.status_code == 400 and "format" in bad.json()["errors"]
    patched = admin_client.patch(f"{url}/{plain['id']}", {"format": "slack"}, format="json")
    assert patched.json()["format"] == "slack" and Webhook.objects.get(pk=plain["id"]).format == "slack"
