"""One alert rule that cannot be measured (a bug in a measure, a params shape nobody expected,
a query the database refuses) is skipped for the run and says so on the settings page; the
other rules of the organisation are still measured, fire and are delivered. An outage still
stops the run, so the task fails and the next one judges again."""

import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DataError, InterfaceError, OperationalError, connection
from django.urls import reverse
from django.utils import timezone

from analytics.models import DailyOrgUsage
from core.exceptions import QueryTimedOut, StorageUnavailable
from core.testing import page_client
from insights import webhooks
from insights.alerts import evaluate, rules
from insights.alerts.tasks import alert_rules_evaluate_task
from insights.models import AlertFiring, AlertRule, WebhookDelivery
from insights.tests.helpers import StubServer

pytestmark = pytest.mark.django_db

QUIET = {"metric": "events", "op": "below", "value": 100}
# The broken rule's params differ from the good one's only so the stub can tell them apart.
BROKEN = {"metric": "events", "op": "below", "value": 99}


def _day():
    return timezone.now().date() - timedelta(days=1)


@pytest.fixture
def two_rules(org):
    """A day of 5 events and two rules that both fire on it; the first is the broken one."""
    DailyOrgUsage.objects.create(organization=org, date=_day(), event_count=5, active_users=1, sessions=1)
    broken = rules.alert_rule_create(org, name="Broken rule", kind="metric_threshold", params=BROKEN)
    good = rules.alert_rule_create(org, name="Good rule", kind="metric_threshold", params=QUIET)
    return broken, good


def _measure_breaks(monkeypatch, raised):
    """The metric measure raises `raised()` for the broken rule's params, answers the others."""
    kind = AlertRule.Kind.METRIC_THRESHOLD
    real = evaluate.MEASURES[kind]

    def measure(org, params, day):
        if params == BROKEN:
            raise raised()
        return real(org, params, day)

    monkeypatch.setitem(evaluate.MEASURES, kind, measure)


def test_a_rule_that_raises_is_skipped_and_the_others_fire_and_are_delivered(
    org, two_rules, monkeypatch, settings, caplog, mailoutbox, django_capture_on_commit_callbacks
):
    broken, good = two_rules
    _measure_breaks(monkeypatch, lambda: KeyError("params['threshold'] of rule 7 in SELECT …"))
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as receiver:
        hook = webhooks.webhook_create(org, url=receiver.url, events=["alert.fired"])
        with caplog.at_level(logging.ERROR, logger=evaluate.__name__):
            with django_capture_on_commit_callbacks(execute=True):
                result = alert_rules_evaluate_task(org.id, [_day().isoformat()])
    assert result == {"fired": 1, "delivered": 1}
    assert [f.rule_id for f in AlertFiring.objects.all()] == [good.id]
    assert len(mailoutbox) == 1 and "Good rule" in mailoutbox[0].body and "Broken rule" not in mailoutbox[0].body
    assert WebhookDelivery.objects.get(webhook=hook).delivered_at is not None
    assert len(receiver.requests) == 1
    # Logged with its traceback, naming the organisation and the rule.
    (record,) = [r for r in caplog.records if r.exc_info]
    assert f"alert rule {broken.id} of organisation {org.id}" in record.getMessage()
    assert record.exc_info[0] is KeyError

    broken.refresh_from_db()
    good.refresh_from_db()
    # Not checked, so not "checked at"; the tenant reads the class of the error and a sentence,
    # never what the exception said.
    assert broken.last_evaluated_at is None and broken.last_error_at is not None
    assert broken.last_error == (
        f"Could not be checked on {_day().isoformat()} (KeyError); it was skipped and is checked again "
        "after the next rollup."
    )
    assert good.last_evaluated_at is not None and good.last_error == "" and good.last_error_at is None


def test_the_error_shows_on_the_settings_page_and_in_the_api_and_clears_after_a_good_run(
    org, two_rules, monkeypatch, admin_user, admin_client
):
    broken, _good = two_rules
    page = page_client(admin_user)
    url = reverse("alert-rule-settings:index")
    with monkeypatch.context() as patch:
        _measure_breaks(patch, lambda: TypeError("unsupported operand"))
        evaluate.alert_rules_evaluate(org, [_day()])
    html = page.get(url).text
    assert html.count('data-testid="rule-error"') == 1
    assert "(TypeError); it was skipped and is checked again after the next rollup." in html
    assert "unsupported operand" not in html
    listed = {r["id"]: r for r in admin_client.get("/api/v1/org/alert-rules").json()["results"]}
    assert "(TypeError)" in listed[broken.id]["last_error"] and listed[broken.id]["last_error_at"]

    # The measure works again: the next run checks the rule, fires it, and the error is gone.
    fired = evaluate.alert_rules_evaluate(org, [_day()])
    assert [f.rule_id for f in fired] == [broken.id]
    broken.refresh_from_db()
    assert broken.last_error == "" and broken.last_error_at is None and broken.last_evaluated_at is not None
    assert 'data-testid="rule-error"' not in page.get(url).text


def test_a_query_the_database_refuses_leaves_the_other_rules_measured(org, two_rules, monkeypatch):
    """On PostgreSQL a failed statement aborts the transaction it runs in: without a savepoint
    per rule, every rule after the broken one (and the firings' writes) would fail too."""
    broken, good = two_rules

    def refused():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 / 0")  # division_by_zero: a DataError
        return DataError("division by zero")

    _measure_breaks(monkeypatch, refused)
    fired = evaluate.alert_rules_evaluate(org, [_day()])
    assert [f.rule_id for f in fired] == [good.id]
    assert "(DataError)" in AlertRule.objects.get(pk=broken.pk).last_error


def test_details_that_cannot_be_stored_skip_only_their_rule(org, two_rules, monkeypatch):
    broken, good = two_rules
    kind = AlertRule.Kind.METRIC_THRESHOLD
    real = evaluate.MEASURES[kind]

    def measure(org, params, day):
        measured = real(org, params, day)
        if params == BROKEN:
            measured.details["oops"] = object()  # no JSON for it
        return measured

    monkeypatch.setitem(evaluate.MEASURES, kind, measure)
    fired = evaluate.alert_rules_evaluate(org, [_day()])
    assert [f.rule_id for f in fired] == [good.id]
    assert list(AlertFiring.objects.values_list("rule_id", flat=True)) == [good.id]
    assert "(TypeError)" in AlertRule.objects.get(pk=broken.pk).last_error


@pytest.mark.parametrize(
    "outage",
    [
        lambda: OperationalError("server closed the connection unexpectedly"),
        lambda: InterfaceError("connection already closed"),
        lambda: StorageUnavailable(),
    ],
    ids=["operational", "interface", "storage"],
)
def test_an_outage_still_stops_the_run(org, two_rules, monkeypatch, outage):
    """Every rule after it would fail too: the task fails and the next run judges again,
    rather than every rule being marked as broken."""
    _measure_breaks(monkeypatch, outage)
    with pytest.raises(type(outage())):
        evaluate.alert_rules_evaluate(org, [_day()])
    assert not AlertFiring.objects.exists()
    assert not AlertRule.objects.exclude(last_error="").exists()
    assert not AlertRule.objects.filter(last_evaluated_at__isnull=False).exists()


def test_a_rule_whose_query_times_out_is_skipped_not_an_outage(org, two_rules, monkeypatch):
    """A funnel rule judged in a web process (eager tasks, `aggregate/run`) runs under the
    statement timeout; a rule whose query is stopped by it is that rule's failure, and the
    database is fine for the rules after it."""
    broken, good = two_rules

    def stopped():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL statement_timeout = 20")
                cursor.execute("SELECT pg_sleep(2)")  # query_canceled: an OperationalError
        return QueryTimedOut()  # what the funnel's bound raises on SQLite

    _measure_breaks(monkeypatch, stopped)
    fired = evaluate.alert_rules_evaluate(org, [_day()])
    assert [f.rule_id for f in fired] == [good.id]
    expected = "(OperationalError)" if connection.vendor == "postgresql" else "(QueryTimedOut)"
    assert expected in AlertRule.objects.get(pk=broken.pk).last_error


def test_a_dry_run_leaves_a_rule_that_raises_out_and_records_nothing(org, two_rules, monkeypatch):
    _measure_breaks(monkeypatch, lambda: ValueError("bad"))
    out = StringIO()
    call_command("evaluate_alert_rules", "--org", org.slug, stdout=out)
    assert f"{org.slug}: 1 rule would fire" in out.getvalue() and "  - Good rule:" in out.getvalue()
    assert not AlertRule.objects.exclude(last_error="").exists()
