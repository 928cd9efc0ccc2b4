"""The channels of a digest are sent apart: SMTP being down does not hold back the webhooks
(Slack included) of the same rule firings or anomalies, and a webhook enqueue that fails
does not hold back the e-mail. What a channel could not send is sent by the next run, once
on that channel: the e-mail when mail works again, without queueing the webhooks a second
time."""

import logging
import smtplib
from datetime import timedelta

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone

from analytics.models import DailyOrgUsage
from core.testing import page_client
from insights import notify, services, webhooks
from insights.alerts import rules
from insights.alerts.tasks import alert_rules_evaluate_task
from insights.models import AlertFiring, Anomaly, WebhookDelivery
from insights.tests.helpers import StubServer
from tenants.models import User

pytestmark = pytest.mark.django_db

SMTP_DOWN = f"{__name__}.SmtpDown"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


class SmtpDown(BaseEmailBackend):
    """The mail server refuses every connection."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPConnectError(421, b"Service not available")


def _day():
    return timezone.now().date() - timedelta(days=1)


@pytest.fixture
def firing_rule(org):
    DailyOrgUsage.objects.create(organization=org, date=_day(), event_count=5, active_users=1, sessions=1)
    return rules.alert_rule_create(
        org, name="Quiet day", kind="metric_threshold", params={"metric": "events", "op": "below", "value": 100}
    )


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as server:
        yield server


def _task_run(org, capture):
    """The post-rollup run of the alert rules for yesterday, its webhooks sent on commit."""
    with capture(execute=True):
        return alert_rules_evaluate_task(org.id, [_day().isoformat()])


def test_smtp_down_still_posts_the_firings_webhooks_and_the_next_run_mails_once(
    org, firing_rule, receiver, settings, mailoutbox, caplog, admin_user, django_capture_on_commit_callbacks
):
    slack = webhooks.webhook_create(org, url=f"{receiver.url}/slack", events=["alert.fired"], format="slack")
    signed = webhooks.webhook_create(org, url=f"{receiver.url}/signed", events=["alert.fired"])
    settings.EMAIL_BACKEND = SMTP_DOWN
    with caplog.at_level(logging.ERROR):
        assert _task_run(org, django_capture_on_commit_callbacks) == {"fired": 1, "delivered": 1}
    assert mailoutbox == []
    assert {d.webhook_id for d in WebhookDelivery.objects.filter(delivered_at__isnull=False)} == {slack.id, signed.id}
    (record,) = [r for r in caplog.records if r.exc_info]
    assert record.getMessage().startswith(f"the alert e-mail of organisation {org.id} failed")
    firing = AlertFiring.objects.get()
    assert firing.webhooks_queued_at is not None and firing.emailed_at is None
    assert firing.notified_at is None and firing.delivery_status == AlertFiring.Delivery.PENDING
    assert "E-mail pending" in page_client(admin_user).get(reverse("alert-rule-settings:index")).text

    # Mail works again: the next run (no new firing) mails the one left, and only mails.
    settings.EMAIL_BACKEND = LOCMEM
    assert _task_run(org, django_capture_on_commit_callbacks) == {"fired": 0, "delivered": 1}
    assert len(mailoutbox) == 1 and "Quiet day" in mailoutbox[0].body
    assert WebhookDelivery.objects.count() == 2 and len(receiver.requests) == 2
    firing.refresh_from_db()
    assert firing.emailed_at is not None and firing.notified_at is not None
    assert firing.delivery_status == AlertFiring.Delivery.SENT
    assert firing.delivery == {"emails": 1, "webhooks": 2}

    # Every channel has it: nothing is sent again.
    assert _task_run(org, django_capture_on_commit_callbacks) == {"fired": 0, "delivered": 0}
    assert len(mailoutbox) == 1 and WebhookDelivery.objects.count() == 2


def test_a_failing_webhook_enqueue_still_mails_and_the_next_run_queues_it_once(
    org, firing_rule, receiver, monkeypatch, mailoutbox, django_capture_on_commit_callbacks
):
    hook = webhooks.webhook_create(org, url=receiver.url, events=["alert.fired"])

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("the broker is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(webhooks, "webhook_enqueue", broker_down)
        assert _task_run(org, django_capture_on_commit_callbacks)["delivered"] == 1
    assert len(mailoutbox) == 1 and not WebhookDelivery.objects.exists()
    firing = AlertFiring.objects.get()
    assert firing.emailed_at is not None and firing.webhooks_queued_at is None and firing.notified_at is None

    assert _task_run(org, django_capture_on_commit_callbacks)["delivered"] == 1
    assert WebhookDelivery.objects.get().webhook_id == hook.id and len(mailoutbox) == 1
    firing.refresh_from_db()
    assert firing.notified_at is not None and firing.delivery == {"emails": 1, "webhooks": 1}


def test_no_channel_reaches_anyone_is_recorded_once_both_are_done(org, firing_rule, settings, mailoutbox):
    """No admin to mail and no webhook: each channel is done at once, with nobody reached."""
    settings.EMAIL_BACKEND = SMTP_DOWN  # never asked: there is nobody to mail
    User.objects.filter(organization=org).update(is_active=False)
    alert_rules_evaluate_task(org.id, [_day().isoformat()])
    firing = AlertFiring.objects.get()
    assert firing.notified_at is not None and firing.delivery_status == AlertFiring.Delivery.NO_RECIPIENTS
    assert firing.delivery == {"emails": 0, "webhooks": 0}


def _anomaly(org):
    return Anomaly.objects.create(
        organization=org, date=_day(), detector="timeseries", metric="event_count", value=90, expected=10, score=9
    )


def test_smtp_down_still_posts_the_anomaly_digest_and_the_next_run_mails_once(
    org, admin_user, receiver, settings, mailoutbox, django_capture_on_commit_callbacks
):
    webhooks.webhook_create(org, url=receiver.url, events=["anomaly.created"])
    anomaly = _anomaly(org)
    settings.EMAIL_BACKEND = SMTP_DOWN
    with django_capture_on_commit_callbacks(execute=True):
        assert notify.alerts_send(org, [anomaly]) == {"anomalies": 1, "emails": 0, "webhooks": 1}
    assert WebhookDelivery.objects.get().delivered_at is not None and mailoutbox == []
    anomaly.refresh_from_db()
    assert anomaly.webhooks_queued_at is not None and anomaly.emailed_at is None and anomaly.notified_at is None

    settings.EMAIL_BACKEND = LOCMEM
    with django_capture_on_commit_callbacks(execute=True):
        assert notify.alerts_send(org, [], unnotified_days=8) == {"anomalies": 1, "emails": 1, "webhooks": 0}
    assert len(mailoutbox) == 1 and "1 new anomaly" in mailoutbox[0].subject
    assert WebhookDelivery.objects.count() == 1 and len(receiver.requests) == 1
    anomaly.refresh_from_db()
    assert anomaly.notified_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert notify.alerts_send(org, [anomaly], unnotified_days=8)["anomalies"] == 0
    assert len(mailoutbox) == 1 and WebhookDelivery.objects.count() == 1


@pytest.mark.parametrize(
    ("marks", "kept"),
    [({}, False), ({"webhooks_queued_at": True}, True), ({"emailed_at": True}, True), ({"notified_at": True}, True)],
    ids=["never-sent", "posted-only", "mailed-only", "notified-before-the-marks"],
)
def test_a_withdrawn_anomaly_is_removed_only_when_no_channel_told_of_it(org, marks, kept):
    """A re-roll that no longer finds an anomaly removes it, unless someone was told of it."""
    anomaly = _anomaly(org)
    Anomaly.objects.filter(pk=anomaly.pk).update(**{field: timezone.now() for field in marks})
    services.anomalies_upsert(org, [], start=_day(), end=_day(), detector_names=["timeseries"])
    assert Anomaly.objects.filter(pk=anomaly.pk).exists() is kept
