"""The public pages: sign in and out (the pages' and the Django admin's), and the page behind
an invitation link. Mounted one by one in usage_platform/urls.py.

The pages use the same accounts as the API: `username` is the e-mail, as in `/api/v1/auth/login`.
Every other page is a tenant page behind `core.pages.org_page`.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods

from core.client_address import client_address
from core.exceptions import DomainError
from core.pages import form_add_domain_error

from . import login_throttle
from . import queries as tenant_queries
from . import services as tenant_services


class ThrottledLoginFormMixin:
    """For Django's AuthenticationForm and its admin variant: the login throttle around the
    password check (`login_throttle`). While throttled the form is invalid with the
    "throttled" error and `retry_after` set, and the password is not checked at all."""

    retry_after = 0

    def clean(self):
        username = self.cleaned_data.get("username")
        if username is None or not self.cleaned_data.get("password"):
            return super().clean()
        address = client_address(self.request)
        try:
            login_throttle.login_throttle_check(email=username, address=address)
        except login_throttle.LoginThrottled as exc:
            self.retry_after = exc.wait
            raise ValidationError(exc.detail, code="throttled")
        try:
            return super().clean()
        finally:
            if self.user_cache is None:
                login_throttle.login_failure_record(email=username, address=address)
            else:
                login_throttle.login_success_record(email=username, address=address)


class ThrottledLoginForm(ThrottledLoginFormMixin, AuthenticationForm):
    pass


def login_throttled_status(response, form):
    """429 with Retry-After for a login page re-rendered because its form was throttled."""
    if form is not None and form.retry_after:
        response.status_code = 429
        response["Retry-After"] = str(form.retry_after)
    return response


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    form_class = ThrottledLoginForm
    redirect_authenticated_user = True

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        # The login form carries a CSRF token tied to the session: never serve it from a cache.
        add_never_cache_headers(response)
        return response

    def form_invalid(self, form):
        return login_throttled_status(super().form_invalid(form), form)


def admin_login(request):
    """The Django admin's login (its form is ThrottledAdminLoginForm, set in tenants/admin.py)
    answering 429 while throttled, as the other login paths do."""
    response = admin.site.login(request)
    return login_throttled_status(response, (getattr(response, "context_data", None) or {}).get("form"))


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): a link or a prefetch cannot sign anyone out."""


class InvitationAcceptForm(forms.Form):
    full_name = forms.CharField(max_length=200, required=False, label="Your name")
    password = forms.CharField(widget=forms.PasswordInput, label="Choose a password")
    password_confirm = forms.CharField(widget=forms.PasswordInput, label="Repeat the password")

    def clean(self):
        data = super().clean()
        if data.get("password") and data.get("password") != data.get("password_confirm"):
            self.add_error("password_confirm", "The two passwords differ.")
        return data


# What the page says instead of the form when the link can no longer be used, and its status.
INVITATION_UNUSABLE = {
    "unknown": (404, "No invitation matches this link; check it, or ask your admin for a new one."),
    "accepted": (410, "This invitation has already been used: log in with its e-mail address."),
    "revoked": (410, "This invitation was withdrawn by the organisation's admin."),
    "expired": (410, "This invitation has expired; ask your admin for a new one."),
}


@require_http_methods(["GET", "POST"])
def invitation_accept(request, token):
    """Public page behind the link an admin shares: it names the organisation, the e-mail and
    the role; set a password, join, get signed in. A used, withdrawn, expired or unknown
    link shows why, without the form."""
    invitation = tenant_queries.invitation_for_token(token=token)
    state = invitation.status if invitation is not None else "unknown"
    if state in INVITATION_UNUSABLE:
        status, reason = INVITATION_UNUSABLE[state]
        context = {"invitation": invitation, "state": state, "reason": reason}
        return render(request, "tenants/invitation_accept.html", context, status=status)
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
    return render(request, "tenants/invitation_accept.html", {"form": form, "invitation": invitation, "state": state})
