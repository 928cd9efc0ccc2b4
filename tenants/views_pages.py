"""Session sign-in for the server-rendered pages, and the one access check every page uses.

The pages use the same accounts as the API: `username` is the e-mail, as in `/api/v1/auth/login`.
`org_page` is the pages' counterpart of `OrgAPIView`: it resolves the organisation once, checks
the role, and marks the response `no-store` so that after logout the back button asks the
server again (and lands on the login page) instead of showing a cached copy.
"""

from functools import wraps

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils.cache import add_never_cache_headers
from django_htmx.http import HttpResponseClientRedirect

from core.client_address import client_address
from core.exceptions import Forbidden, NotFound

from . import login_throttle
from .models import Role

ROLE_DENIED = {
    Role.ADMIN: "This page needs the admin role in your organisation.",
    Role.ANALYST: "This page needs the analyst or admin role in your organisation.",
    Role.MEMBER: "This page needs a member account in an organisation.",
}


def org_page(role=Role.ANALYST):
    """Decorator for tenant pages: anonymous → login redirect; no organisation (platform staff)
    or a lower role → the 403 page. Sets `request.org` and `no-store` on every response."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                login = redirect_to_login(request.get_full_path())
                if getattr(request, "htmx", False):
                    # An expired session during a filter change: load the login page as a
                    # page, not inside the fragment being swapped.
                    return HttpResponseClientRedirect(login["Location"])
                return login
            if user.organization_id is None:
                raise PermissionDenied("Platform staff accounts have no organisation; use the Django admin.")
            if not user.has_role(role):
                raise PermissionDenied(ROLE_DENIED[role])
            request.org = user.organization
            response = view(request, *args, **kwargs)
            add_never_cache_headers(response)
            return response

        return wrapper

    return decorator


def domain_errors_as_pages(view):
    """The services' errors as pages: NotFound (another organisation's id) → 404 page,
    Forbidden → 403 page."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail)
        except Forbidden as exc:
            raise PermissionDenied(exc.detail)

    return wrapped


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
