"""Measuring alert rules after a rollup and recording what fired.

Each kind has a measure function `(org, params, day) -> Measurement | None` reading
`analytics.queries` (rollups where they can answer, never SQL of our own); None means there
is nothing to judge (no data yet, a feature that is gone), which never fires. A rule fires
at most once per evaluated day: AlertFiring is unique per (rule, day), so a re-rolled day or
a retried task cannot fire it twice.

A rule whose measure raises (a bug, a stored params shape nobody expected, a query the
database refuses) is skipped for the run and says why on the rule (`last_error`); the other
rules are still measured. Only an outage (`core.exceptions.storage_outage`) stops the run,
as every rule after it would fail too."""

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics import queries
from analytics.queries.funnel import funnel_steps_resolve
from core.exceptions import storage_outage
from telemetry.models import Feature
from tenants.models import Organization

from ..models import AlertFiring, AlertRule

logger = logging.getLogger(__name__)

# Late data re-rolls old days; rules judge at most this far back, so a backfill does not
# page anyone about last month.
LOOKBACK_DAYS = 7
# A funnel rule looks at the users who entered during this many days; its baseline is the
# BASELINE_PERIODS periods before.
FUNNEL_PERIOD_DAYS = 7
FUNNEL_BASELINE_PERIODS = 4
# Retention averages about this many weekly cohorts that are old enough to be measured.
RETENTION_COHORTS = 4
# A conversion or retention rate of fewer users than this is noise, not news: no firing.
MIN_USERS = 10

SUMMARY_KEYS = {
    "events": "total_events",
    "active_users": "active_users",
    "sessions": "sessions",
    "avg_session_duration": "avg_session_duration",
}
METRIC_LABELS = {
    "events": "Events",
    "active_users": "Active users",
    "sessions": "Sessions",
    "avg_session_duration": "Average session (s)",
}


@dataclass(frozen=True)
class Measurement:
    value: float
    threshold: float
    fired: bool
    window_start: date
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _metric_threshold(org: Organization, params: dict[str, Any], day: date) -> Measurement | None:
    filters: dict[str, Any] = {}
    subject = ""
    if params.get("feature"):
        feature_id = (
            Feature.objects.filter(organization=org, key=params["feature"]).values_list("id", flat=True).first()
        )
        if feature_id is None:
            return None
        filters["feature"] = feature_id
        subject = f" of {params['feature']}"
    summary = queries.usage_summary(org, day, day, filters or None)
    figure = summary[SUMMARY_KEYS[params["metric"]]]["value"]
    if figure is None:
        # No figure (an average of no sessions): nothing to judge, never a made-up 0.
        return None
    value = float(figure)
    threshold = float(params["value"])
    fired = value > threshold if params["op"] == "above" else value < threshold
    message = (
        f"{METRIC_LABELS[params['metric']]}{subject} on {day.isoformat()}: {_figure(value)}, "
        f"{params['op']} {_figure(threshold)}."
    )
    return Measurement(value, threshold, fired, day, message, {"metric": params["metric"], "op": params["op"]})


def _step_conversion(org: Organization, params: dict[str, Any], start: date, end: date) -> tuple[float, int] | None:
    """% of the funnel's entrants in start..end who reached `step`, and how many entered."""
    result = queries.funnel(org, steps=params["steps"], window_days=params["window_days"], start=start, end=end)
    steps = result["steps"]
    entered = steps[0]["users"]
    # Too few entrants (none: no conversion at all) is nothing to judge, never a 0 %.
    if entered < MIN_USERS:
        return None
    # From the counts, not the answer's percentage rounded to 0.1: a drop from 1 in 3 to 1 in
    # 6 is exactly 50 %, where 33.3 → 16.7 reads as 49.8 % and missed a 50 % rule.
    return steps[params["step"] - 1]["users"] * 100 / entered, entered


def _funnel_conversion(org: Organization, params: dict[str, Any], day: date) -> Measurement | None:
    # A step whose feature is gone since (deleted, or its key changed) matches no event, so
    # the conversion would read 0 % after every rollup: nothing to judge, as for a metric rule.
    resolved, unknown = funnel_steps_resolve(org, params["steps"])
    if unknown or resolved != params["steps"]:
        return None
    # Only entrants who have had the whole conversion window by `day` count: recent ones
    # would look like a drop merely because they have not had time to convert yet.
    end = day - timedelta(days=params["window_days"])
    start = end - timedelta(days=FUNNEL_PERIOD_DAYS - 1)
    current = _step_conversion(org, params, start, end)
    if current is None:
        return None
    value, entered = current
    step_key = params["steps"][params["step"] - 1]
    details: dict[str, Any] = {"entered": entered, "step": params["step"], "step_key": step_key, "period_end": end}
    label = f"Conversion to step {params['step']} ({step_key}) of users entering {start.isoformat()}…{end.isoformat()}"
    if "below" in params:
        threshold = params["below"]
        message = f"{label}: {value:.1f} %, below {threshold:g} %."
        return Measurement(round(value, 2), threshold, value < threshold, start, message, details)
    base_end = start - timedelta(days=1)
    base_start = start - timedelta(days=FUNNEL_PERIOD_DAYS * FUNNEL_BASELINE_PERIODS)
    baseline = _step_conversion(org, params, base_start, base_end)
    if baseline is None or baseline[0] <= 0:
        return None
    threshold = baseline[0] * (1 - params["drop_pct"] / 100)
    drop = (baseline[0] - value) / baseline[0] * 100
    details |= {"baseline": round(baseline[0], 2), "drop_pct": round(drop, 1), "baseline_start": base_start}
    message = (
        f"{label}: {value:.1f} %, down {drop:.0f} % on its baseline of {baseline[0]:.1f} % "
        f"(alert at ≥ {params['drop_pct']:g} %)."
    )
    return Measurement(round(value, 2), round(threshold, 2), value <= threshold, start, message, details)


def _retention(org: Organization, params: dict[str, Any], day: date) -> Measurement | None:
    n = params["day"]
    # Cohorts are weekly; the latest ones cannot be measured at D-n yet, so look back far
    # enough that RETENTION_COHORTS of them can.
    weeks = RETENTION_COHORTS + (n + 6) // 7 + 1
    cohorts = queries.retention(org, weeks=weeks, end=day)["cohorts"]
    averages = queries.retention_averages(cohorts)
    value = averages[f"d{n}"]
    if value is None:
        return None
    measured = [c for c in cohorts if c["size"] and c.get(f"d{n}") is not None]
    if sum(c["size"] for c in measured) < MIN_USERS:
        return None
    threshold = float(params["below"])
    cohorts_text = (
        "the latest measurable weekly cohort"
        if len(measured) == 1
        else f"the {len(measured)} latest measurable weekly cohorts"
    )
    message = f"D{n} retention of {cohorts_text}: {value:.1f} %, below {threshold:g} %."
    details = {"retention_day": n, "users": sum(c["size"] for c in measured)}
    return Measurement(float(value), threshold, value < threshold, measured[0]["cohort_start"], message, details)


MEASURES: dict[str, Callable[[Organization, dict[str, Any], date], Measurement | None]] = {
    AlertRule.Kind.METRIC_THRESHOLD: _metric_threshold,
    AlertRule.Kind.FUNNEL_CONVERSION: _funnel_conversion,
    AlertRule.Kind.RETENTION: _retention,
}


def rule_measure(org: Organization, rule: AlertRule, day: date) -> Measurement | None:
    return MEASURES[rule.kind](org, rule.params, day)


def days_to_evaluate(dates: Iterable[date], *, today: date) -> list[date]:
    """The complete days among `dates` no older than LOOKBACK_DAYS (today is partial); the
    latest complete day when none are given."""
    given = sorted(set(dates))
    if not given:
        return [today - timedelta(days=1)]
    return [d for d in given if today - timedelta(days=LOOKBACK_DAYS) <= d < today]


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date) else v for k, v in details.items()}


def _active_rules(org: Organization) -> list[AlertRule]:
    return list(AlertRule.objects.filter(organization=org, active=True).order_by("id"))


@dataclass
class Outcome:
    """What measuring the active rules found: the new firings, and for each rule that raised,
    the sentence its `last_error` shows."""

    fired: list[tuple[AlertRule, date, Measurement]] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def failure_text(exc: Exception, day: date) -> str:
    """What the tenant is told: the exception's class and a plain sentence, never its message
    (it may quote SQL or another rule's internals)."""
    return (
        f"Could not be checked on {day.isoformat()} ({type(exc).__name__}); it was skipped and is "
        "checked again after the next rollup."
    )


@contextmanager
def _rule_guarded(org: Organization, rule: AlertRule, day: date, failed: dict[int, str]) -> Iterator[None]:
    """Run the block in a savepoint (on PostgreSQL a query error aborts the enclosing
    transaction, which would fail every rule after this one). Anything it raises but an
    outage is logged and noted in `failed` instead."""
    try:
        with transaction.atomic():
            yield
    except Exception as exc:
        if storage_outage(exc):
            raise
        logger.exception("alert rule %s of organisation %s failed on %s; skipped this run", rule.id, org.pk, day)
        failed[rule.id] = failure_text(exc, day)


def _new_firings(org: Organization, active: list[AlertRule], days: list[date]) -> Outcome:
    """Each active rule measured on each day it has not fired on yet. A rule that raises is
    skipped for the rest of the run (its other days would most likely raise too); what it
    fired on earlier days stands."""
    done = set(AlertFiring.objects.filter(rule__in=active, day__in=days).values_list("rule_id", "day"))
    outcome = Outcome()
    for rule in active:
        for day in days:
            if (rule.id, day) in done:
                continue
            measurement = None
            with _rule_guarded(org, rule, day, outcome.failed):
                measurement = rule_measure(org, rule, day)
            if rule.id in outcome.failed:
                break
            if measurement is not None and measurement.fired:
                outcome.fired.append((rule, day, measurement))
    return outcome


def alert_rules_dry_run(org: Organization, days: Iterable[date]) -> list[tuple[AlertRule, date, Measurement]]:
    """What `alert_rules_evaluate` would record on `days`, writing nothing (no firing, no
    `last_evaluated_at`, no `last_error`): a check by hand cannot queue firings for the next
    run to send. A rule that raises is logged and left out."""
    days = sorted(set(days))
    active = _active_rules(org)
    return _new_firings(org, active, days).fired if active and days else []


def alert_rules_evaluate(org: Organization, days: Iterable[date]) -> list[AlertFiring]:
    """Measure every active rule of `org` on each of `days` and record a firing for each
    rule that fires on a day it has not fired on yet. Returns the new firings."""
    days = sorted(set(days))
    active = _active_rules(org)
    if not active or not days:
        return []
    created: list[AlertFiring] = []
    outcome = _new_firings(org, active, days)
    for rule, day, measurement in outcome.fired:
        # Recording is guarded too: details a measure got wrong fail on their way to JSON.
        with _rule_guarded(org, rule, day, outcome.failed):
            firing = _firing_record(org, rule, day, measurement)
            if firing is not None:
                created.append(firing)
    _rules_mark(active, outcome.failed)
    logger.info(
        "alert rules of org %s on %s: %d fired, %d could not be measured",
        org.pk,
        [d.isoformat() for d in days],
        len(created),
        len(outcome.failed),
    )
    return created


def _firing_record(org: Organization, rule: AlertRule, day: date, measurement: Measurement) -> AlertFiring | None:
    """The new firing, or None when a concurrent run of the same day fired it a moment ago."""
    try:
        with transaction.atomic():
            return AlertFiring.objects.create(
                rule=rule,
                organization=org,
                day=day,
                window_start=measurement.window_start,
                value=round(measurement.value, 4),
                threshold=round(measurement.threshold, 4),
                message=measurement.message[:500],
                details=_jsonable(measurement.details),
            )
    except IntegrityError:
        return None


def _rules_mark(active: list[AlertRule], failed: dict[int, str]) -> None:
    """Checked rules get `last_evaluated_at` and lose an earlier error; one that raised keeps
    its last good `last_evaluated_at` and says why it was not checked."""
    now = timezone.now()
    checked = [r.pk for r in active if r.pk not in failed]
    AlertRule.objects.filter(pk__in=checked).update(last_evaluated_at=now, last_error="", last_error_at=None)
    for rule_id, text in failed.items():
        AlertRule.objects.filter(pk=rule_id).update(last_error=text, last_error_at=now)
