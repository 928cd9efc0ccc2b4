"""Alert rules measured on hand-counted fixtures: each kind fires when it should and stays
quiet when it should not, once per rule and day, only for its own organisation; the
post-rollup task enqueues the evaluation."""

from datetime import UTC, datetime, time, timedelta
from importlib import import_module
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics import rollup
from analytics.models import DailyFeatureUsage, DailyOrgUsage
from analytics.tests.factories import end_user, event, feature
from insights import tasks
from insights.alerts import evaluate, rules
from insights.alerts.tasks import alert_rules_evaluate_task
from insights.models import AlertFiring, AlertRule, Anomaly
from insights.tests.helpers import free_port

pytestmark = pytest.mark.django_db


def _day():
    return timezone.now().date() - timedelta(days=1)


def _at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=UTC)


def _rule(org, kind, params, name="rule"):
    return rules.alert_rule_create(org, name=name, kind=kind, params=params)


def _org_day(org, day, *, events, users=5, sessions=7):
    DailyOrgUsage.objects.create(
        organization=org, date=day, event_count=events, active_users=users, sessions=sessions, avg_session_duration=60
    )


# --- metric_threshold ---------------------------------------------------------------------------


def test_metric_threshold_fires_below_and_stays_quiet_above(org):
    day = _day()
    _org_day(org, day, events=50, sessions=12)
    low = _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 100}, name="low")
    _rule(org, "metric_threshold", {"metric": "events", "op": "above", "value": 100}, name="high")
    _rule(org, "metric_threshold", {"metric": "sessions", "op": "below", "value": 12}, name="sessions equal")
    fired = evaluate.alert_rules_evaluate(org, [day])
    assert [f.rule_id for f in fired] == [low.id]
    firing = fired[0]
    assert (firing.day, firing.value, firing.threshold) == (day, 50.0, 100.0)
    assert "Events" in firing.message and "below 100" in firing.message


def test_metric_threshold_on_one_feature(org):
    day = _day()
    checkout, other = feature(org, "checkout"), feature(org, "search")
    for feat, count in ((checkout, 900), (other, 10)):
        DailyFeatureUsage.objects.create(
            organization=org, feature=feat, date=day, event_count=count, daily_active_users=3, sessions=4
        )
    _org_day(org, day, events=910)
    busy = _rule(org, "metric_threshold", {"metric": "events", "op": "above", "value": 500, "feature": "checkout"})
    _rule(org, "metric_threshold", {"metric": "events", "op": "above", "value": 500, "feature": "search"})
    gone = feature(org, "deleted-one")
    _rule(org, "metric_threshold", {"metric": "events", "op": "above", "value": 1, "feature": "deleted-one"})
    gone.delete()  # a rule whose feature is gone since has nothing to judge
    fired = evaluate.alert_rules_evaluate(org, [day])
    assert [(f.rule_id, f.value) for f in fired] == [(busy.id, 900.0)]
    assert "of checkout" in fired[0].message


def test_a_null_figure_is_nothing_to_judge(org):
    """An average of no sessions is null in usage-summary: the rule does not fire on a
    made-up 0 (while a count of 0 is a real figure and does)."""
    day = _day()
    feature(org, "feature_1")
    DailyOrgUsage.objects.create(organization=org, date=day, event_count=40, active_users=3, sessions=0)
    for scope in ({}, {"feature": "feature_1"}):
        _rule(org, "metric_threshold", {"metric": "avg_session_duration", "op": "below", "value": 5} | scope)
    zero = _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 5, "feature": "feature_1"})
    _rule(org, "retention", {"day": 7, "below": 50}, name="no cohort at all")
    fired = evaluate.alert_rules_evaluate(org, [day])
    assert [(f.rule_id, f.value) for f in fired] == [(zero.id, 0.0)]


# --- funnel_conversion --------------------------------------------------------------------------


def _funnel_users(org, steps, *, entered_on, users, converted, prefix):
    """`users` enter with steps[0] on `entered_on`; the first `converted` also do steps[1]
    an hour later."""
    for i in range(users):
        person = end_user(org, f"{prefix}-{i}", first_seen=_at(entered_on))
        event(org, steps[0], person, _at(entered_on))
        if i < converted:
            event(org, steps[1], person, _at(entered_on, 13))


@pytest.fixture
def funnel_data(org):
    """Baseline entrants convert 8 in 10, the latest complete period's 2 in 10."""
    day = _day()
    steps = [feature(org, "cart"), feature(org, "paid")]
    # window_days=1: the current period ends the day before `day`, the baseline before it.
    _funnel_users(org, steps, entered_on=day - timedelta(days=3), users=10, converted=2, prefix="now")
    _funnel_users(org, steps, entered_on=day - timedelta(days=15), users=10, converted=8, prefix="before")
    return day


def test_funnel_conversion_below_a_value(org, funnel_data):
    base = {"steps": ["cart", "paid"], "window_days": 1}
    fires = _rule(org, "funnel_conversion", base | {"below": 50}, name="below 50")
    _rule(org, "funnel_conversion", base | {"below": 10}, name="below 10")
    fired = evaluate.alert_rules_evaluate(org, [funnel_data])
    assert [(f.rule_id, f.value, f.threshold) for f in fired] == [(fires.id, 20.0, 50.0)]
    assert fired[0].details["entered"] == 10 and fired[0].details["step_key"] == "paid"


def test_funnel_conversion_drop_on_its_baseline(org, funnel_data):
    base = {"steps": ["cart", "paid"], "window_days": 1}
    fires = _rule(org, "funnel_conversion", base | {"drop_pct": 50}, name="drop 50")
    _rule(org, "funnel_conversion", base | {"drop_pct": 80}, name="drop 80")
    fired = evaluate.alert_rules_evaluate(org, [funnel_data])
    assert [f.rule_id for f in fired] == [fires.id]
    firing = fired[0]
    # 80 % → 20 %: down 75 %; the rule's line is 80 % × (1 − 0.5) = 40 %.
    assert (firing.value, firing.threshold) == (20.0, 40.0)
    assert firing.details["baseline"] == 80.0 and firing.details["drop_pct"] == 75.0


def test_funnel_conversion_drop_is_judged_on_the_counts_not_rounded_percentages(org):
    """1 in 3 → 1 in 6 is a drop of exactly 50 %; rounded to 0.1 first (33.3 → 16.7) it
    read 49.8 % and a 50 % rule stayed quiet."""
    day = _day()
    steps = [feature(org, "cart"), feature(org, "paid")]
    _funnel_users(org, steps, entered_on=day - timedelta(days=3), users=12, converted=2, prefix="now")
    _funnel_users(org, steps, entered_on=day - timedelta(days=15), users=12, converted=4, prefix="before")
    rule = _rule(org, "funnel_conversion", {"steps": ["cart", "paid"], "window_days": 1, "drop_pct": 50})
    fired = evaluate.alert_rules_evaluate(org, [day])
    assert [(f.rule_id, f.value, f.threshold) for f in fired] == [(rule.id, 16.67, 16.67)]
    assert fired[0].details["drop_pct"] == 50.0


@pytest.mark.parametrize("change", ["deleted", "key changed"])
def test_funnel_with_a_step_gone_stays_quiet(org, change):
    """A later step whose feature is gone matched nothing: the rule fired at 0 % after every
    rollup (a metric rule on a gone feature was already quiet)."""
    day = _day()
    cart, paid = feature(org, "cart"), feature(org, "paid")
    _funnel_users(org, [cart, paid], entered_on=day - timedelta(days=3), users=10, converted=8, prefix="now")
    _rule(org, "funnel_conversion", {"steps": ["cart", "paid"], "window_days": 1, "below": 50})
    if change == "deleted":
        paid.delete()
    else:
        paid.key = "paid-v2"
        paid.save(update_fields=["key"])
    assert evaluate.alert_rules_evaluate(org, [day]) == []


def test_a_funnel_rule_is_judged_whatever_the_web_time_limit(org, funnel_data, settings, monkeypatch):
    """The worker judges the rules; on SQLite the funnel's web time limit stopped its statement
    there too (README: commands and workers have no limit), and the evaluation raised."""
    settings.DB_STATEMENT_TIMEOUT_MS, settings.WEB_PROCESS = 1, False
    # The funnel module's clock (not the `funnel` function analytics.queries exports under the
    # same name) reads a second later each time: any limit is past once the statement runs.
    clock = iter(range(0, 10**9, 1000))
    monkeypatch.setattr(
        import_module("analytics.queries.funnel"), "time", SimpleNamespace(monotonic=lambda: next(clock))
    )
    fires = _rule(org, "funnel_conversion", {"steps": ["cart", "paid"], "window_days": 1, "below": 50})
    assert [f.rule_id for f in evaluate.alert_rules_evaluate(org, [funnel_data])] == [fires.id]


def test_funnel_without_entrants_stays_quiet(org):
    feature(org, "cart"), feature(org, "paid")
    _rule(org, "funnel_conversion", {"steps": ["cart", "paid"], "below": 50})
    assert evaluate.alert_rules_evaluate(org, [_day()]) == []


# --- retention ----------------------------------------------------------------------------------


def test_retention_below_fires_and_above_is_quiet(org):
    day = _day()
    app = feature(org, "app")
    first = day - timedelta(days=14)
    for i in range(10):
        person = end_user(org, f"u{i}", first_seen=_at(first))
        event(org, app, person, _at(first))
        if i < 3:
            event(org, app, person, _at(first + timedelta(days=1)))
    fires = _rule(org, "retention", {"day": 1, "below": 50}, name="d1 below 50")
    _rule(org, "retention", {"day": 1, "below": 20}, name="d1 below 20")
    _rule(org, "retention", {"day": 30, "below": 50}, name="d30 not measurable yet")
    rollup.rollup_range(first, day, org)  # retention reads the per-user rollups, as after a rollup
    fired = evaluate.alert_rules_evaluate(org, [day])
    assert [(f.rule_id, f.value) for f in fired] == [(fires.id, 30.0)]
    assert fired[0].details["users"] == 10 and "D1 retention" in fired[0].message


# --- once per day, tenants, inactive rules, the task ------------------------------------------


def test_fires_once_per_rule_and_day(org):
    day = _day()
    _org_day(org, day, events=5)
    _org_day(org, day - timedelta(days=1), events=5)
    rule = _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 100})
    assert len(evaluate.alert_rules_evaluate(org, [day])) == 1
    assert evaluate.alert_rules_evaluate(org, [day]) == []
    assert len(evaluate.alert_rules_evaluate(org, [day, day - timedelta(days=1)])) == 1
    assert AlertFiring.objects.filter(rule=rule).count() == 2
    assert AlertRule.objects.get(pk=rule.pk).last_evaluated_at is not None


def test_inactive_rules_and_other_organisations_stay_quiet(org, other_org):
    day = _day()
    _org_day(org, day, events=5)
    _org_day(other_org, day, events=5000)
    rules.alert_rule_update(
        org, _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 100}).id, active=False
    )
    theirs = _rule(other_org, "metric_threshold", {"metric": "events", "op": "below", "value": 100})
    assert evaluate.alert_rules_evaluate(org, [day]) == []
    # The other organisation's figures are its own: 5,000 events is not below 100.
    assert evaluate.alert_rules_evaluate(other_org, [day]) == []
    assert not AlertFiring.objects.filter(rule=theirs).exists()


def test_days_to_evaluate():
    today = timezone.now().date()
    assert evaluate.days_to_evaluate([], today=today) == [today - timedelta(days=1)]
    assert evaluate.days_to_evaluate([today], today=today) == []
    old = today - timedelta(days=30)
    assert evaluate.days_to_evaluate([old, today - timedelta(days=2), today], today=today) == [
        today - timedelta(days=2)
    ]


def test_after_rollup_enqueues_evaluation_on_commit(org, django_capture_on_commit_callbacks, mailoutbox):
    day = _day()
    _org_day(org, day, events=5)
    _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 100})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.after_rollup(org.id, [day.isoformat()])
    assert len(callbacks) == 1 and not AlertFiring.objects.exists()
    callbacks[0]()
    firing = AlertFiring.objects.get()
    assert firing.day == day and firing.notified_at is not None
    assert len(mailoutbox) == 1 and "1 alert from rule “rule”" in mailoutbox[0].subject
    # Today's hourly rollup has no complete day to judge.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.after_rollup(org.id, [timezone.now().date().isoformat()])
    assert callbacks == []


def test_an_anomaly_digest_that_cannot_be_mailed_does_not_cost_the_rules_their_day(
    org, settings, django_capture_on_commit_callbacks
):
    """The rules are judged only on the days a rollup hands over: when the anomaly e-mail
    failed (SMTP down) before the evaluation was queued, that day was never judged."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
    day = _day()
    _org_day(org, day, events=5)
    _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 100})
    Anomaly.objects.create(
        organization=org, date=day, detector="timeseries", metric="event_count", value=90, expected=10, score=9
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.after_rollup(org.id, [day.isoformat()])  # the e-mail's failure is logged
    assert len(callbacks) == 1
    callbacks[0]()  # the firing's e-mail fails too: recorded, sent by the next run
    firing = AlertFiring.objects.get()
    assert firing.day == day and firing.notified_at is None and firing.emailed_at is None


def test_too_few_users_to_judge_stay_quiet(org):
    day = _day()
    steps = [feature(org, "cart"), feature(org, "paid")]
    _funnel_users(
        org, steps, entered_on=day - timedelta(days=3), users=evaluate.MIN_USERS - 1, converted=0, prefix="few"
    )
    _rule(org, "funnel_conversion", {"steps": ["cart", "paid"], "window_days": 1, "below": 50})
    _rule(org, "retention", {"day": 1, "below": 50})
    assert evaluate.alert_rules_evaluate(org, [day]) == []


def test_evaluate_command(org, mailoutbox):
    day = _day()
    _org_day(org, day, events=5)
    _rule(org, "metric_threshold", {"metric": "events", "op": "below", "value": 100})
    rule = AlertRule.objects.get()
    out = StringIO()
    # Without --send, a dry run: it says what would fire and records nothing the next
    # rollup's run could send.
    call_command("evaluate_alert_rules", "--org", org.slug, stdout=out)
    assert f"{org.slug}: 1 rule would fire on {day.isoformat()} (dry run: nothing recorded or sent)" in out.getvalue()
    assert "  - rule: Events on" in out.getvalue()
    assert not AlertFiring.objects.exists() and len(mailoutbox) == 0
    rule.refresh_from_db()
    assert rule.last_evaluated_at is None
    alert_rules_evaluate_task(org.id, [])  # the post-rollup run for yesterday sends it once, as new
    assert len(mailoutbox) == 1 and AlertFiring.objects.get().notified_at is not None
    AlertFiring.objects.all().delete()
    mailoutbox.clear()
    out = StringIO()
    call_command("evaluate_alert_rules", "--org", org.slug, "--send", stdout=out)
    assert f"{org.slug}: 1 rule fired on {day.isoformat()}, 1 sent" in out.getvalue()
    assert len(mailoutbox) == 1
    out = StringIO()
    call_command("evaluate_alert_rules", "--org", org.slug, stdout=out)
    assert "0 rules would fire" in out.getvalue()  # already fired on that day, and said so
    assert f"1 rule had already fired on {day.isoformat()}" in out.getvalue()
    assert "  - rule: Events on" in out.getvalue() and "UTC)" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("evaluate_alert_rules", "--day", timezone.now().date().isoformat(), stdout=out)
