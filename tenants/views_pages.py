"""Session sign-in for the server-rendered pages, and the one access check every page uses.

The pages use the same accounts as the API: `username` is the e-mail, as in `/api/v1/auth/login`.
`org_page` is the pages' counterpart of `OrgAPIView`: it resolves the organisation once, checks
the role, and marks the response `no-store` so that after logout the back button asks the
server again (and lands on the login page) instead of showing a cached copy.
"""

from functools import wraps

from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.cache import add_never_cache_headers
from django_htmx.http import HttpResponseClientRedirect

from usage_platform.exceptions import Forbidden, NotFound

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


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        # The login form carries a CSRF token tied to the session: never serve it from a cache.
        add_never_cache_headers(response)
        return response


class LogoutView(auth_views.LogoutView):
    """POST only (Django 5): a link or a prefetch cannot sign anyone out."""
