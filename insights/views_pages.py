"""Insights pages: the Insights page (narrative, anomalies, charts, forecast), the forecast
partial the feature detail page embeds, and the Webhooks tab of Settings.

Webhooks are insights' rows, and tenants may not import insights, so their settings tab is
served from here while sharing the settings layout and `page_role` of tenants.
Views validate a form or query parameters, call one insights function and render.
"""

from django import forms
from django.shortcuts import render
from django.views.decorators.http import require_http_methods, require_POST

from tenants.models import Role
from tenants.views_settings import form_add_domain_error, page_role, render_section
from usage_platform.exceptions import DomainError

from . import webhooks as webhook_services
from .models import Webhook

RECENT_DELIVERIES = 5


# --- Webhooks (Settings tab) -----------------------------------------------------------------


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=500, label="Endpoint URL", assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=Webhook.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Webhook.Event.ANOMALY_CREATED],
        error_messages={"required": "Choose at least one event."},
    )
    active = forms.BooleanField(required=False, initial=True, label="Active")


def _webhooks_response(request, **extra):
    org = request.org
    webhooks = [
        {
            "webhook": webhook,
            "deliveries": list(webhook_services.webhook_deliveries(org, webhook.pk)[:RECENT_DELIVERIES]),
        }
        for webhook in webhook_services.webhook_list(org)
    ]
    context = {
        "settings_tab": "webhooks",
        "org": org,
        "webhooks": webhooks,
        "webhook_form": extra.pop("webhook_form", None) or WebhookForm(),
        **extra,
    }
    return render_section(request, "tenants/settings_webhooks.html", "tenants/partials/webhooks_section.html", context)


@page_role(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def webhooks(request):
    if request.method == "GET":
        return _webhooks_response(request)
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook = webhook_services.webhook_create(
                request.org,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                active=form.cleaned_data["active"],
            )
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            return _webhooks_response(request, new_webhook=webhook)
    return _webhooks_response(request, webhook_form=form)


@page_role(Role.ADMIN)
@require_POST
def webhook_toggle(request, webhook_id):
    """Flips `active`; the form posts the wanted state so a double click cannot undo itself."""
    active = request.POST.get("active") == "1"
    webhook = webhook_services.webhook_update(request.org, webhook_id, active=active)
    state = "active" if webhook.active else "paused"
    return _webhooks_response(request, webhooks_notice=f"Webhook {webhook.url} is now {state}.")


@page_role(Role.ADMIN)
@require_POST
def webhook_delete(request, webhook_id):
    webhook_services.webhook_delete(request.org, webhook_id)
    return _webhooks_response(request, webhooks_notice="Webhook deleted.")


def _render(request, template, context):
    return render(request, template, {"active_nav": "insights", **context})
