"""Two deliveries of one organisation at once (two rollups' evaluations): the anomalies and
the rule firings one run is sending are skipped by the other, never sent twice (PostgreSQL,
a second connection holding the first run's claim)."""

import threading
from datetime import date

import pytest
from django.core import mail
from django.db import connection, connections, transaction

from insights import notify
from insights.alerts import delivery, rules
from insights.models import AlertFiring, Anomaly

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


def _claimed_elsewhere(model, pk):
    """A thread on its own connection that locks row `pk` of `model` as a sending run does;
    returns (started, release)."""
    started, release = threading.Event(), threading.Event()

    def hold():
        try:
            with transaction.atomic():
                list(model.objects.select_for_update().filter(pk=pk))
                started.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(10)
    return thread, release


def test_an_anomaly_being_sent_by_another_run_is_skipped_then_sent_once(org, admin_user):
    anomaly = Anomaly.objects.create(
        organization=org, date=date.today(), detector="timeseries", metric="event_count", value=90, expected=10, score=9
    )
    thread, release = _claimed_elsewhere(Anomaly, anomaly.pk)
    try:
        assert notify.alerts_send(org, [anomaly])["anomalies"] == 0 and mail.outbox == []
    finally:
        release.set()
        thread.join()
    assert notify.alerts_send(org, [anomaly])["anomalies"] == 1 and len(mail.outbox) == 1


def test_a_firing_being_sent_by_another_run_is_skipped_then_sent_once(org, admin_user):
    rule = rules.alert_rule_create(org, name="r", kind="retention", params={"day": 1, "below": 5})
    day = date(2026, 11, 2)
    firing = AlertFiring.objects.create(
        rule=rule, organization=org, day=day, window_start=day, value=1, threshold=5, message="m"
    )
    thread, release = _claimed_elsewhere(AlertFiring, firing.pk)
    try:
        assert delivery.alert_firings_deliver(org, [firing])["firings"] == 0 and mail.outbox == []
    finally:
        release.set()
        thread.join()
    assert delivery.alert_firings_deliver(org, [firing])["firings"] == 1 and len(mail.outbox) == 1
