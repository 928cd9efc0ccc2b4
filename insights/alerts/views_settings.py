"""Settings → Alert rules: the organisation's rules with their latest firings, and HTMX
forms to add, edit, pause and delete them. Like the Webhooks tab, it is served from
insights (which owns the rows) in the settings layout. The form's fields are the params
of the chosen kind; the service validates them and its errors land next to their fields."""

from typing import Any

from django import forms
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import DomainError
from core.pages import form_add_domain_error, org_page, render_page
from core.query_params import parse_id
from tenants.models import Role

from ..models import AlertRule
from . import evaluate, rules

RECENT_FIRINGS = 5
KIND_FIELDS = {
    AlertRule.Kind.METRIC_THRESHOLD: ("metric", "op", "value", "feature"),
    AlertRule.Kind.FUNNEL_CONVERSION: ("steps", "step", "below", "drop_pct", "window_days"),
    AlertRule.Kind.RETENTION: ("day", "below"),
}


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=rules.NAME_MAX, label="Name")
    kind = forms.ChoiceField(choices=AlertRule.Kind.choices, widget=forms.HiddenInput)
    active = forms.BooleanField(required=False, initial=True, label="Active")
    metric = forms.ChoiceField(
        required=False, choices=[(m, evaluate.METRIC_LABELS[m]) for m in rules.METRICS], label="Metric"
    )
    op = forms.ChoiceField(
        required=False, choices=[("below", "falls below"), ("above", "rises above")], label="When it"
    )
    value = forms.FloatField(required=False, min_value=0, label="Value")
    feature = forms.CharField(
        required=False,
        max_length=100,
        label="Feature",
        help_text="Its key, name or id. Empty: the whole organisation.",
    )
    steps = forms.CharField(
        required=False,
        max_length=1000,
        label="Funnel steps",
        help_text=(
            "Features (key, id or name) or event types, comma-separated; a feature whose name holds a comma: its key."
        ),
    )
    step = forms.IntegerField(required=False, min_value=2, label="Step", help_text="Empty: the last step.")
    below = forms.FloatField(required=False, min_value=0, max_value=100, label="Below (%)")
    drop_pct = forms.FloatField(
        required=False, min_value=1, max_value=100, label="or down by at least (%)", help_text="Fill in one of the two."
    )
    window_days = forms.IntegerField(required=False, min_value=1, max_value=90, initial=7, label="Window (days)")
    day = forms.TypedChoiceField(
        required=False, coerce=int, choices=[(1, "D1"), (7, "D7"), (30, "D30")], initial=7, label="Retention day"
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "kind" in self.errors:
            # The kind is a hidden field: say so above the form, where it can be seen.
            self.add_error(None, f"Choose a kind of rule: {', '.join(label for _, label in AlertRule.Kind.choices)}.")
        return cleaned

    def kind_fields(self) -> list[forms.BoundField]:
        kind = self["kind"].value() or AlertRule.Kind.METRIC_THRESHOLD
        return [self[name] for name in KIND_FIELDS.get(kind, ())]

    def params(self) -> dict[str, Any]:
        """The kind's params from the cleaned fields, empty ones left out (the service fills
        in its defaults and names what is missing)."""
        data = self.cleaned_data
        params: dict[str, Any] = {}
        for name in KIND_FIELDS[data["kind"]]:
            value = data.get(name)
            if value in (None, ""):
                continue
            if name == "steps" and isinstance(value, str):
                value = [s.strip() for s in value.split(",") if s.strip()]
            params[name] = value
        return params


def _form_for(rule: AlertRule) -> AlertRuleForm:
    params = dict(rule.params)
    if "steps" in params:
        params["steps"] = ", ".join(params["steps"])
    return AlertRuleForm(initial={"name": rule.name, "kind": rule.kind, "active": rule.active, **params})


def _add_error(form: AlertRuleForm, exc: DomainError) -> None:
    # The service names params as `params.<name>`; the form's fields are the bare names, and
    # its messages say the fields' labels.
    errors = {
        key.removeprefix("params."): [rules.labelled(m) for m in messages] for key, messages in exc.errors.items()
    }
    form_add_domain_error(form, DomainError(rules.labelled(exc.detail), errors=errors))


def _summary(rule: AlertRule) -> str:
    p = rule.params
    if rule.kind == AlertRule.Kind.METRIC_THRESHOLD:
        scope = f" of {p['feature']}" if p.get("feature") else ""
        return f"{evaluate.METRIC_LABELS[p['metric']]}{scope} {p['op']} {p['value']:,g} on a day"
    if rule.kind == AlertRule.Kind.FUNNEL_CONVERSION:
        steps = " → ".join(p["steps"])
        condition = f"below {p['below']:g} %" if "below" in p else f"down ≥ {p['drop_pct']:g} % on its baseline"
        return f"Conversion to step {p['step']} of {steps} ({p['window_days']}-day window) {condition}"
    return f"D{p['day']} retention below {p['below']:g} %"


def _response(request, *, form: AlertRuleForm | None = None, editing: AlertRule | None = None, **extra):
    org = request.org
    if form is None:
        kind = request.GET.get("kind")
        form = AlertRuleForm(initial={"kind": kind if kind in rules.KINDS else AlertRule.Kind.METRIC_THRESHOLD})
    context = {
        "active_nav": "settings",
        "settings_tab": "alert_rules",
        "org": org,
        "rules": [
            # `recent_firings` is set by the prefetch (to_attr), unknown to the model's type.
            {"rule": rule, "summary": _summary(rule), "firings": rule.recent_firings}  # type: ignore[attr-defined]
            for rule in rules.alert_rule_list_with_firings(org, recent=RECENT_FIRINGS)
        ],
        "rule_form": form,
        "form_kind": form["kind"].value(),
        "kinds": AlertRule.Kind.choices,
        "editing": editing,
        **extra,
    }
    return render_page(
        request,
        page="insights/settings_alert_rules.html",
        fragment="insights/partials/alert_rules_section.html",
        context=context,
    )


def _save(request, editing: AlertRule | None):
    form = AlertRuleForm(request.POST)
    if form.is_valid():
        fields = {"name": form.cleaned_data["name"], "kind": form.cleaned_data["kind"], "params": form.params()}
        try:
            if editing is None:
                rule = rules.alert_rule_create(
                    request.org, user=request.user, active=form.cleaned_data["active"], **fields
                )
                notice = f"Alert rule “{rule.name}” added: it is checked after each rollup."
            else:
                rule = rules.alert_rule_update(request.org, editing.pk, active=form.cleaned_data["active"], **fields)
                notice = f"Alert rule “{rule.name}” saved."
        except DomainError as exc:
            _add_error(form, exc)
        else:
            return _response(request, rules_notice=notice)
    # 200, like the other settings forms: htmx swaps only 2xx answers into the page.
    return _response(request, form=form, editing=editing)


@org_page(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def alert_rules(request):
    if request.method == "POST":
        return _save(request, None)
    # ASCII digits only: "²".isdigit() is true and int("²") raises.
    edit_id = parse_id(request.GET.get("edit", ""))
    if edit_id is not None:
        rule = rules.alert_rule_get(request.org, edit_id)
        return _response(request, form=_form_for(rule), editing=rule)
    return _response(request)


@org_page(Role.ADMIN)
@require_POST
def alert_rule_edit(request, rule_id):
    return _save(request, rules.alert_rule_get(request.org, rule_id))


@org_page(Role.ADMIN)
@require_POST
def alert_rule_toggle(request, rule_id):
    """The form posts the wanted state, so a double click cannot undo itself."""
    rule = rules.alert_rule_update(request.org, rule_id, active=request.POST.get("active") == "1")
    state = "active" if rule.active else "paused"
    return _response(request, rules_notice=f"Alert rule “{rule.name}” is now {state}.")


@org_page(Role.ADMIN)
@require_POST
def alert_rule_delete(request, rule_id):
    rules.alert_rule_delete(request.org, rule_id)
    return _response(request, rules_notice="Alert rule deleted, with its firing history.")
