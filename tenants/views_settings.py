"""Settings pages for organisation admins: the organisation, members and invitations, API keys.

Each view validates a small form, calls one function of `tenants.services` and renders the
section again. HTMX requests get only the section partial (the page swaps it in place);
plain form posts get the whole page, so every action also works without JavaScript.
Domain errors become form errors; another organisation's id raises a 404 page.

Webhooks belong to insights, which tenants may not import; their settings tab is
`insights.views_settings`, in the same layout (`tenants/settings_base.html`).
"""

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.cors import MAX_ORIGIN_LENGTH
from core.exceptions import DomainError, NotFound
from core.pages import form_add_domain_error, is_htmx, org_page, render_page

from . import queries
from . import services as tenant_services
from .models import Role
from .origins import MAX_ALLOWED_ORIGINS


def render_section(request, page_template, partial_template, context):
    """The section partial for HTMX, the full page otherwise."""
    return render_page(
        request, page=page_template, fragment=partial_template, context={"active_nav": "settings", **context}
    )


# --- Forms -------------------------------------------------------------------------------


class OrganizationForm(forms.Form):
    name = forms.CharField(max_length=200)
    auto_create_features = forms.BooleanField(
        required=False,
        label="Create unknown features automatically",
        help_text="When off, events naming a feature that does not exist yet are rejected.",
    )
    alert_threshold = forms.FloatField(
        min_value=0.5,
        max_value=100,
        label="Alert threshold (anomaly score)",
        help_text="New anomalies scoring at or above this send alerts. Default 3.5.",
    )


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254, label="E-mail")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class OriginsField(forms.CharField):
    """Origins one per line (spaces and commas separate too) → a list; tenants.services
    checks each one."""

    widget = forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "placeholder": "https://app.example.com"})

    def to_python(self, value):
        return (super().to_python(value) or "").replace(",", " ").split()

    def prepare_value(self, value):
        return "\n".join(value) if isinstance(value, list) else value


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Key name", help_text="Where the key is used, e.g. “web app”.")
    allowed_origins = OriginsField(
        required=False,
        max_length=MAX_ALLOWED_ORIGINS * (MAX_ORIGIN_LENGTH + 1),
        label="Allowed origins (browsers)",
        help_text="Web pages that may send with this key through up.js, one per line. Empty: server-side only.",
    )


class ApiKeyOriginsForm(forms.Form):
    allowed_origins = OriginsField(
        required=False, max_length=MAX_ALLOWED_ORIGINS * (MAX_ORIGIN_LENGTH + 1), label="Allowed origins"
    )


# --- Organisation --------------------------------------------------------------------------


@org_page(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def organization(request):
    org = request.org
    if request.method == "POST":
        form = OrganizationForm(request.POST)
        if form.is_valid():
            try:
                tenant_services.organization_update(org=org, **form.cleaned_data)
            except DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                messages.success(request, "Organisation settings saved.")
                return redirect("settings:organization")
    else:
        form = OrganizationForm(
            initial={
                "name": org.name,
                "auto_create_features": org.auto_create_features,
                "alert_threshold": org.alert_threshold,
            }
        )
    return render(
        request,
        "tenants/settings_organization.html",
        {"active_nav": "settings", "settings_tab": "organization", "org": org, "form": form},
    )


# --- Members and invitations ---------------------------------------------------------------


def _members_context(request, **extra):
    org = request.org
    return {
        "settings_tab": "members",
        "org": org,
        "members": queries.members_list(org=org),
        "invitations": queries.invitations_list(org=org)[:50],
        "role_choices": Role.choices,
        "invite_form": extra.pop("invite_form", None) or InvitationForm(),
        **extra,
    }


def _members_response(request, **extra):
    return render_section(
        request,
        "tenants/settings_members.html",
        "tenants/partials/members_section.html",
        _members_context(request, **extra),
    )


@org_page(Role.ADMIN)
@require_http_methods(["GET"])
def members(request):
    return _members_response(request)


@org_page(Role.ADMIN)
@require_POST
def member_role(request, member_id):
    org = request.org
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _members_response(request, members_error="Choose one of the roles admin, analyst or member.")
    try:
        member = tenant_services.member_change_role(org=org, user_id=member_id, role=form.cleaned_data["role"])
    except NotFound:
        raise
    except DomainError as exc:
        return _members_response(request, members_error=exc.detail)
    notice = f"{member.email} is now {member.get_role_display().lower()}."
    if member.pk == request.user.pk and member.role != Role.ADMIN:
        # An admin who stepped down can no longer see Settings: leave for the dashboard.
        messages.success(request, notice)
        return _leave_settings(request)
    return _members_response(request, members_notice=notice)


def _leave_settings(request, to="/"):
    if is_htmx(request):
        return HttpResponseClientRedirect(to)
    return redirect(to)


@org_page(Role.ADMIN)
@require_POST
def member_remove(request, member_id):
    org = request.org
    member = tenant_services.member_get(org=org, user_id=member_id)
    try:
        tenant_services.member_remove(org=org, user_id=member_id)
    except NotFound:
        raise
    except DomainError as exc:
        return _members_response(request, members_error=exc.detail)
    if member.pk == request.user.pk:
        # Removing oneself ends the session: the account no longer exists.
        logout(request)
        return _leave_settings(request)
    return _members_response(request, members_notice=f"{member.email} was removed from the organisation.")


@org_page(Role.ADMIN)
@require_POST
def invitation_create(request):
    org = request.org
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation, _token, accept_url = tenant_services.invitation_send(
                org=org,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
                accept_url_for=lambda token: request.build_absolute_uri(reverse("invitation-accept", args=[token])),
            )
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            return _members_response(request, new_invitation=invitation, accept_url=accept_url)
    return _members_response(request, invite_form=form)


@org_page(Role.ADMIN)
@require_POST
def invitation_revoke(request, invitation_id):
    tenant_services.invitation_revoke(org=request.org, invitation_id=invitation_id)
    return _members_response(request, members_notice="Invitation revoked.")


# --- API keys ------------------------------------------------------------------------------


def first_event_curl(base_url: str, raw_key: str) -> str:
    """A copy-paste command that sends one event with a new key to this server."""
    return (
        f"curl -X POST {base_url}/api/v1/events/track \\\n"
        f'  -H "Authorization: Bearer {raw_key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{"feature": "getting-started", "user_id": "first-user", "event_type": "interaction"}\''
    )


def up_js_snippet(base_url: str, raw_key: str) -> str:
    """The script tag that loads the browser tracker with a new key."""
    return f'<script src="{base_url}/static/up.js" data-key="{raw_key}" data-pageviews defer></script>'


def _api_keys_response(request, **extra):
    org = request.org
    context = {
        "settings_tab": "api_keys",
        "org": org,
        "api_keys": queries.api_keys_list(org=org),
        "key_form": extra.pop("key_form", None) or ApiKeyForm(),
        **extra,
    }
    return render_section(request, "tenants/settings_api_keys.html", "tenants/partials/api_keys_section.html", context)


@org_page(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def api_keys(request):
    if request.method == "GET":
        return _api_keys_response(request)
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            api_key, raw = tenant_services.api_key_create(
                org=request.org,
                name=form.cleaned_data["name"],
                created_by=request.user,
                allowed_origins=form.cleaned_data["allowed_origins"],
            )
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            base_url = request.build_absolute_uri("/").rstrip("/")
            return _api_keys_response(
                request,
                new_key=api_key,
                new_key_raw=raw,
                new_key_curl=first_event_curl(base_url, raw),
                new_key_script=up_js_snippet(base_url, raw),
            )
    return _api_keys_response(request, key_form=form)


@org_page(Role.ADMIN)
@require_POST
def api_key_origins(request, key_id):
    api_key = tenant_services.api_key_get(org=request.org, key_id=key_id)
    form = ApiKeyOriginsForm(request.POST)
    if form.is_valid():
        try:
            tenant_services.api_key_origins_set(api_key=api_key, allowed_origins=form.cleaned_data["allowed_origins"])
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            count = len(form.cleaned_data["allowed_origins"])
            notice = (
                f"Key “{api_key.name}” accepts browser requests from {count} origin{pluralize(count)}."
                if count
                else f"Key “{api_key.name}” is server-side only: browser requests are refused."
            )
            return _api_keys_response(request, keys_notice=notice)
    # The row's edit form opens again with the text as typed and the errors under it.
    return _api_keys_response(request, origins_form=form, origins_key_id=api_key.pk)


@org_page(Role.ADMIN)
@require_POST
def api_key_revoke(request, key_id):
    api_key = tenant_services.api_key_revoke(org=request.org, key_id=key_id)
    return _api_keys_response(request, keys_notice=f"Key “{api_key.name}” revoked; it can no longer send events.")
