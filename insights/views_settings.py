"""Settings → Webhooks: list, add, pause and delete the organisation's webhooks, each with
its latest deliveries. Webhooks are insights' rows and tenants may not import insights, so
this tab is served from here, in the settings layout (`tenants/settings_base.html`).
Views validate a form, call one `insights.webhooks` function and render the section again."""

from django import forms
from django.views.decorators.http import require_http_methods, require_POST

from core.exceptions import DomainError
from core.pages import form_add_domain_error, org_page, render_page
from tenants.models import Role

from . import webhooks as hooks
from .models import Webhook

RECENT_DELIVERIES = 5


class WebhookForm(forms.Form):
    url = forms.URLField(max_length=500, label="Endpoint URL", assume_scheme="https")
    events = forms.MultipleChoiceField(
        choices=Webhook.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[Webhook.Event.ANOMALY_CREATED],
        error_messages={"required": "Choose at least one event."},
    )
    format = forms.ChoiceField(
        required=False,  # older clients post no format: the signed JSON envelope
        choices=Webhook.Format.choices,
        initial=Webhook.Format.SIGNED_JSON,
        label="Format",
        widget=forms.RadioSelect,
    )
    active = forms.BooleanField(required=False, initial=True, label="Active")


def _webhooks_response(request, **extra):
    org = request.org
    webhooks = hooks.webhook_list_with_deliveries(org, recent=RECENT_DELIVERIES)
    context = {
        "active_nav": "settings",
        "settings_tab": "webhooks",
        "org": org,
        "webhooks": [{"webhook": webhook, "deliveries": webhook.recent_deliveries} for webhook in webhooks],
        "webhook_form": extra.pop("webhook_form", None) or WebhookForm(),
        **extra,
    }
    return render_page(
        request,
        page="tenants/settings_webhooks.html",
        fragment="tenants/partials/webhooks_section.html",
        context=context,
    )


@org_page(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def webhooks(request):
    if request.method == "GET":
        return _webhooks_response(request)
    form = WebhookForm(request.POST)
    if form.is_valid():
        try:
            webhook = hooks.webhook_create(
                request.org,
                url=form.cleaned_data["url"],
                events=form.cleaned_data["events"],
                format=form.cleaned_data["format"] or Webhook.Format.SIGNED_JSON,
                active=form.cleaned_data["active"],
            )
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            return _webhooks_response(request, new_webhook=webhook)
    return _webhooks_response(request, webhook_form=form)


@org_page(Role.ADMIN)
@require_POST
def webhook_toggle(request, webhook_id):
    """Flips `active`; the form posts the wanted state so a double click cannot undo itself."""
    active = request.POST.get("active") == "1"
    webhook = hooks.webhook_update(request.org, webhook_id, active=active)
    state = "active" if webhook.active else "paused"
    return _webhooks_response(request, webhooks_notice=f"Webhook {webhook.url} is now {state}.")


@org_page(Role.ADMIN)
@require_POST
def webhook_delete(request, webhook_id):
    hooks.webhook_delete(request.org, webhook_id)
    return _webhooks_response(request, webhooks_notice="Webhook deleted.")
