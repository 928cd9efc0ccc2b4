"""Alert rule CRUD and the per-kind validation of `params`.

Kinds and their params (DESIGN "Accounts and segments (v2)"):

- `metric_threshold`: `{metric, op: "above"|"below", value, feature?}`: the metric of the
  evaluated day (organisation-wide, or of one feature) against `value`. `feature` is taken
  as an id, key or name like everywhere else and stored as the feature's key; one that does
  not exist is refused (the rule could never fire).
- `funnel_conversion`: `{steps: [feature key or event type, …], step?, below? | drop_pct?,
  window_days?}`: the share of the funnel's entrants that reached `step` (default the last),
  below `below` %, or down by at least `drop_pct` % on its baseline.
- `retention`: `{day: 1|7|30, below}`: D1/D7/D30 retention of the recent cohorts below
  `below` %.

Every error names the offending param as `params.<name>` (a 400 in the API). A threshold no
figure can cross ("below 0": nothing is negative) is refused too."""

from collections.abc import Callable
from datetime import date
from typing import Any, NoReturn

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from analytics.queries.funnel import funnel_steps_resolve
from core.exceptions import DomainError, NotFound
from core.rows import row_update
from telemetry.queries import feature_find
from tenants.models import Organization, User

from ..models import AlertFiring, AlertRule

KINDS = tuple(AlertRule.Kind.values)
METRICS = ("events", "active_users", "sessions", "avg_session_duration")
OPS = ("above", "below")
RETENTION_DAYS = (1, 7, 30)
FUNNEL_MAX_STEPS = 10
FUNNEL_WINDOW_DAYS = (1, 90)
DEFAULT_WINDOW_DAYS = 7
NAME_MAX = 120


# How the settings form labels each param: its errors say these, not `params.<name>`.
LABELS = {
    "metric": "Metric",
    "op": "When it",
    "value": "Value",
    "feature": "Feature",
    "steps": "Funnel steps",
    "step": "Step",
    "below": "Below (%)",
    "drop_pct": "Down by at least (%)",
    "window_days": "Window (days)",
    "day": "Retention day",
}


def labelled(message: str) -> str:
    """`message` with each `params.<name>` said as the form's label (longest names first:
    `params.steps` before `params.step`)."""
    for name in sorted(LABELS, key=len, reverse=True):
        message = message.replace(f"params.{name}", LABELS[name])
    return message


def _refuse(field: str, message: str) -> NoReturn:
    raise DomainError(message, errors={field: [message]})


def _number(
    params: dict[str, Any], name: str, *, low: float, high: float | None = None, above_low: bool = False
) -> float:
    """`params[name]` as a number in low..high; with `above_low`, strictly above `low` (a
    "below" threshold at the lowest possible figure could never fire)."""
    value = params.get(name)
    # bool is an int in Python; `true` is not a threshold.
    # Said as the settings form labels it ("Value"); the field stays `params.<name>`.
    label = LABELS.get(name, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        _refuse(f"params.{name}", f"{label} must be a number.")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        _refuse(f"params.{name}", f"{label} must be {bound}.")
    if above_low and value == low:
        _refuse(
            f"params.{name}", f"{label} must be more than {low:g}: no figure is below {low:g}, so it could never fire."
        )
    return float(value)


def _text(value: object) -> bool:
    """Non-blank text of at most 100 characters without NUL (which PostgreSQL's jsonb refuses)."""
    return isinstance(value, str) and bool(value.strip()) and len(value) <= 100 and "\x00" not in value


def _only(params: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        _refuse(f"params.{unknown[0]}", f"Unknown param {unknown[0]!r}; this kind takes {', '.join(sorted(allowed))}.")


def _metric_params(org: Organization, params: dict[str, Any]) -> dict[str, Any]:
    _only(params, {"metric", "op", "value", "feature"})
    metric = params.get("metric")
    if metric not in METRICS:
        _refuse("params.metric", f"params.metric must be one of: {', '.join(METRICS)}.")
    op = params.get("op")
    if op not in OPS:
        _refuse("params.op", 'params.op must be "above" or "below".')
    clean: dict[str, Any] = {
        "metric": metric,
        "op": op,
        "value": _number(params, "value", low=0, above_low=op == "below"),
    }
    feature = params.get("feature")
    if feature is not None:
        if not _text(feature):
            _refuse("params.feature", "params.feature must be a feature key (text, at most 100 characters).")
        found = feature_find(org, feature.strip())
        if found is None:
            _refuse("params.feature", f"Unknown feature {feature.strip()!r}: give a feature's id, key or name.")
        clean["feature"] = found.key
    return clean


def _funnel_params(org: Organization, params: dict[str, Any]) -> dict[str, Any]:
    _only(params, {"steps", "step", "below", "drop_pct", "window_days"})
    steps = params.get("steps")
    if not isinstance(steps, list) or not 2 <= len(steps) <= FUNNEL_MAX_STEPS or not all(_text(s) for s in steps):
        _refuse(
            "params.steps",
            f"params.steps must list 2 to {FUNNEL_MAX_STEPS} feature keys or event types (text, ≤ 100 characters).",
        )
    steps = [s.strip() for s in steps]
    repeated = sorted({s for s in steps if steps.count(s) > 1})
    if repeated:
        _refuse("params.steps", f"params.steps names {repeated[0]!r} twice: each step must be another one.")
    step = params.get("step", len(steps))
    if isinstance(step, bool) or not isinstance(step, int) or not 2 <= step <= len(steps):
        _refuse("params.step", f"params.step must be a step number from 2 to {len(steps)}.")
    has_below, has_drop = params.get("below") is not None, params.get("drop_pct") is not None
    if has_below == has_drop:
        _refuse("params.below", "Give exactly one of params.below (a conversion %) or params.drop_pct.")
    clean: dict[str, Any] = {"steps": steps, "step": step}
    if has_below:
        clean["below"] = _number(params, "below", low=0, high=100, above_low=True)
    else:
        clean["drop_pct"] = _number(params, "drop_pct", low=1, high=100)
    window = params.get("window_days", DEFAULT_WINDOW_DAYS)
    low, high = FUNNEL_WINDOW_DAYS
    if isinstance(window, bool) or not isinstance(window, int) or not low <= window <= high:
        _refuse("params.window_days", f"params.window_days must be a whole number of days from {low} to {high}.")
    clean["window_days"] = window
    # Last, as it reads the database. A misspelt step counts nobody: the rule would fire
    # after every rollup.
    clean["steps"], unknown = funnel_steps_resolve(org, steps)
    if unknown:
        _refuse(
            "params.steps", f"{unknown[0]!r} is no feature (key, id or name) and no event type any end user has sent."
        )
    return clean


def _retention_params(org: Organization, params: dict[str, Any]) -> dict[str, Any]:
    _only(params, {"day", "below"})
    day = params.get("day")
    # A whole number, not merely equal to one: 7.0 == 7, and a stored 7.0 breaks the measure.
    if isinstance(day, bool) or not isinstance(day, int) or day not in RETENTION_DAYS:
        _refuse("params.day", "params.day must be 1, 7 or 30.")
    return {"day": day, "below": _number(params, "below", low=0, high=100, above_low=True)}


PARAMS_CHECKS: dict[str, Callable[[Organization, dict[str, Any]], dict[str, Any]]] = {
    AlertRule.Kind.METRIC_THRESHOLD: _metric_params,
    AlertRule.Kind.FUNNEL_CONVERSION: _funnel_params,
    AlertRule.Kind.RETENTION: _retention_params,
}


def params_check(org: Organization, kind: object, params: object) -> dict[str, Any]:
    """`params` normalised for `kind` (defaults filled in), or DomainError naming the bad one."""
    if kind not in PARAMS_CHECKS:
        _refuse("kind", f"kind must be one of: {', '.join(KINDS)}.")
    if not isinstance(params, dict):
        _refuse("params", "params must be an object.")
    return PARAMS_CHECKS[str(kind)](org, params)


def _name_check(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        _refuse("name", "A rule needs a name.")
    if len(name.strip()) > NAME_MAX:
        _refuse("name", f"The name is longer than {NAME_MAX} characters.")
    return name.strip()


# --- CRUD ---------------------------------------------------------------------------------


def alert_rule_list(org: Organization) -> QuerySet[AlertRule]:
    return AlertRule.objects.filter(organization=org).order_by("-created_at", "-id")


def alert_rule_list_with_firings(org: Organization, *, recent: int) -> list[AlertRule]:
    """`alert_rule_list`, each rule with its `recent` latest firings in `recent_firings`:
    two queries whatever the number of rules."""
    latest = AlertFiring.objects.order_by("-fired_at", "-id")[:recent]
    return list(alert_rule_list(org).prefetch_related(Prefetch("firings", queryset=latest, to_attr="recent_firings")))


def alert_rule_get(org: Organization, rule_id: int) -> AlertRule:
    rule = AlertRule.objects.filter(organization=org, pk=rule_id).first()
    if rule is None:
        raise NotFound("Alert rule not found.")
    return rule


def alert_rule_create(
    org: Organization, *, name: object, kind: object, params: object, active: bool = True, user: User | None = None
) -> AlertRule:
    return AlertRule.objects.create(
        organization=org,
        name=_name_check(name),
        kind=str(kind),
        params=params_check(org, kind, params),
        active=bool(active),
        created_by=user if user is not None and user.is_authenticated else None,
    )


def alert_rule_update(org: Organization, rule_id: int, **fields: Any) -> AlertRule:
    """Change name, kind, params or active. A new kind needs params that fit it; params alone
    are checked against the rule's kind."""
    rule = alert_rule_get(org, rule_id)
    changes: dict[str, Any] = {}
    if "name" in fields:
        changes["name"] = _name_check(fields["name"])
    kind = fields.get("kind", rule.kind)
    if "kind" in fields and kind != rule.kind and "params" not in fields:
        _refuse("params", "Changing the kind needs params for the new kind.")
    if "kind" in fields or "params" in fields:
        changes["kind"] = kind
        changes["params"] = params_check(org, kind, fields.get("params", rule.params))
    if "active" in fields:
        changes["active"] = bool(fields["active"])
    if changes:
        changes["updated_at"] = timezone.now()
    return row_update(rule, missing="Alert rule not found.", **changes)


def alert_rule_delete(org: Organization, rule_id: int) -> None:
    alert_rule_get(org, rule_id).delete()


def alert_firings(org: Organization, rule_id: int) -> QuerySet[AlertFiring]:
    rule = alert_rule_get(org, rule_id)
    return AlertFiring.objects.filter(rule=rule).order_by("-fired_at", "-id")


def alert_firings_of_day(org: Organization, day: date) -> QuerySet[AlertFiring]:
    """The firings already recorded for `day`, each rule's once (a day fires a rule once)."""
    return AlertFiring.objects.filter(organization=org, day=day).select_related("rule").order_by("rule__name", "id")
