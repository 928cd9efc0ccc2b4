"""Settings pages for organisation admins: the organisation, members and invitations, API keys.

Each view validates a small form, calls one function of `tenants.services` and renders the
section again. HTMX requests get only the section partial (the page swaps it in place);
plain form posts get the whole page, so every action also works without JavaScript.
Domain errors become form errors; another organisation's id raises a 404 page.

Webhooks belong to insights, which tenants may not import; their settings tab lives in
`insights.views_pages` and shares this module's `page_role` decorator and templates.
"""

from functools import wraps
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from core.exceptions import DomainError, NotFound

from . import queries
from . import services as tenant_services
from .models import Role
from .views_pages import domain_errors_as_pages, org_page


def page_role(role):
    """`org_page` (login, role, 403 page, `request.org`) plus the services' errors as pages:
    NotFound (another organisation's id) → 404 page, Forbidden → 403 page. An HTMX request
    whose session has ended is sent to the login page as a whole, instead of swapping the
    login form into a section."""

    def decorator(view):
        guarded = org_page(role)(domain_errors_as_pages(view))

        @wraps(view)
        def entry(request, *args, **kwargs):
            if getattr(request, "htmx", False) and not request.user.is_authenticated:
                page = request.htmx.current_url_abs_path or request.get_full_path()
                return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': page})}")
            return guarded(request, *args, **kwargs)

        return entry

    return decorator


def form_add_domain_error(form, exc: DomainError) -> None:
    """Show a service's DomainError on the form: field messages next to their fields, the
    rest (and the summary when no field matched) at the top."""
    placed = False
    for field, field_messages in (exc.errors or {}).items():
        target = field if field in form.fields else None
        for message in field_messages:
            form.add_error(target, message if target else exc.detail)
            placed = True
            if target is None:
                break
    if not placed:
        form.add_error(None, exc.detail)


def render_section(request, page_template, partial_template, context):
    """The section partial for HTMX, the full page otherwise."""
    template = partial_template if getattr(request, "htmx", False) else page_template
    return render(request, template, {"active_nav": "settings", **context})


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


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label="Key name", help_text="Where the key is used, e.g. “web app”.")


class InvitationAcceptForm(forms.Form):
    full_name = forms.CharField(max_length=200, required=False, label="Your name")
    password = forms.CharField(widget=forms.PasswordInput, label="Choose a password")
    password_confirm = forms.CharField(widget=forms.PasswordInput, label="Repeat the password")

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return data


# --- Organisation --------------------------------------------------------------------------


@page_role(Role.ADMIN)
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
                return redirect("settings-organization")
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


@page_role(Role.ADMIN)
@require_http_methods(["GET"])
def members(request):
    return _members_response(request)


@page_role(Role.ADMIN)
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
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(to)
    return redirect(to)


@page_role(Role.ADMIN)
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


@page_role(Role.ADMIN)
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


@page_role(Role.ADMIN)
@require_POST
def invitation_revoke(request, invitation_id):
    tenant_services.invitation_revoke(org=request.org, invitation_id=invitation_id)
    return _members_response(request, members_notice="Invitation revoked.")


@require_http_methods(["GET", "POST"])
def invitation_accept(request, token):
    """Public page behind the link an admin shares: set a password, join, get signed in."""
    if request.method == "POST":
        form = InvitationAcceptForm(request.POST)
        if form.is_valid():
            try:
                user = tenant_services.invitation_accept(
                    token=token, password=form.cleaned_data["password"], full_name=form.cleaned_data["full_name"]
                )
            except DomainError as exc:
                form_add_domain_error(form, exc)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome to {user.organization.name}.")
                return redirect("/")
    else:
        form = InvitationAcceptForm()
    return render(request, "tenants/invitation_accept.html", {"form": form})


# --- API keys ------------------------------------------------------------------------------


def first_event_curl(base_url: str, raw_key: str) -> str:
    """A copy-paste command that sends one event with a new key to this server."""
    return (
        f"curl -X POST {base_url}/api/v1/events/track \\\n"
        f'  -H "Authorization: Bearer {raw_key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{"feature": "getting-started", "user_id": "first-user", "event_type": "interaction"}\''
    )


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


@page_role(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def api_keys(request):
    if request.method == "GET":
        return _api_keys_response(request)
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            api_key, raw = tenant_services.api_key_create(
                org=request.org, name=form.cleaned_data["name"], created_by=request.user
            )
        except DomainError as exc:
            form_add_domain_error(form, exc)
        else:
            base_url = request.build_absolute_uri("/").rstrip("/")
            return _api_keys_response(
                request, new_key=api_key, new_key_raw=raw, new_key_curl=first_event_curl(base_url, raw)
            )
    return _api_keys_response(request, key_form=form)


@page_role(Role.ADMIN)
@require_POST
def api_key_revoke(request, key_id):
    api_key = tenant_services.api_key_revoke(org=request.org, key_id=key_id)
    return _api_keys_response(request, keys_notice=f"Key “{api_key.name}” revoked; it can no longer send events.")
