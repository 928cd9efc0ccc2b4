"""What every tenant page shares: the one access decorator and the HTMX rendering rules.

`org_page` is the pages' counterpart of the API's `OrgAPIView`: it resolves the organisation
once, checks the role, turns the services' NotFound/Forbidden into the 404/403 pages, and
marks the response `no-store` so that after logout the back button asks the server again
(and lands on the login page) instead of showing a cached copy. Roles are the user's
(`user.has_role`); core names them only to word the 403 page.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render, resolve_url
from django.utils.cache import add_never_cache_headers
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

from .db_routing import SAFE_METHODS, replica_reads_run
from .exceptions import DomainError, Forbidden, NotFound

ROLE_DENIED = {
    "admin": "This page needs the admin role in your organisation.",
    "analyst": "This page needs the analyst or admin role in your organisation.",
    "member": "This page needs a member account in an organisation.",
}
STAFF_DENIED = "Platform staff accounts have no organisation; use the Django admin."


class PageRequest(HttpRequest):
    """A page's request as the type checker sees it once django-htmx's middleware and
    `org_page` have run (Django builds the object; this class is only an annotation)."""

    htmx: HtmxDetails
    org: Any  # the user's Organization (core imports no app)


def is_htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def login_redirect(request: PageRequest) -> HttpResponse:
    """To the login page, back here afterwards. Under htmx (a session that ended during a
    filter change or a settings action) the browser loads the login page as a whole instead
    of swapping it into a fragment, and comes back to the page it shows (HX-Current-URL), not
    to the fragment or action URL it asked for."""
    if is_htmx(request):
        shown = request.htmx.current_url_abs_path
        if shown:
            return HttpResponseClientRedirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode({'next': shown})}")
        return HttpResponseClientRedirect(redirect_to_login(request.get_full_path())["Location"])
    return redirect_to_login(request.get_full_path())


def org_page(role: str, *, replica: bool = False) -> Callable:
    """Decorator for tenant pages: anonymous → login redirect; no organisation (platform
    staff) or a role below `role` → the 403 page; another organisation's id (the services'
    NotFound) → the 404 page. Sets `request.org`, and `no-store` on every response.
    `replica=True` (the pages of figures): a GET reads from the read replica when there is
    one (core.db_routing)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: PageRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            user = request.user
            if not user.is_authenticated:
                return login_redirect(request)
            if user.organization_id is None:
                raise PermissionDenied(STAFF_DENIED)
            if not user.has_role(role):
                raise PermissionDenied(ROLE_DENIED[role])
            request.org = user.organization
            try:
                if replica and request.method in SAFE_METHODS:
                    response = replica_reads_run(
                        lambda: view(request, *args, **kwargs), org_id=request.org.pk, user_id=user.pk
                    )
                else:
                    response = view(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.detail)
            except Forbidden as exc:
                raise PermissionDenied(exc.detail)
            add_never_cache_headers(response)
            return response

        return wrapper

    return decorator


def wants_fragment(request: PageRequest) -> bool:
    """True when htmx asked for a fragment (not a history restore, which needs the page)."""
    return is_htmx(request) and not request.htmx.history_restore_request


def render_page(request: PageRequest, *, page: str, fragment: str, context: dict, status: int = 200) -> HttpResponse:
    """The fragment for htmx, the whole page otherwise: every page also works without
    JavaScript, and a filtered or paged URL opened directly shows the whole page."""
    return render(request, fragment if wants_fragment(request) else page, context, status=status)


LEAVE_OUT_ROUNDS = 5


# What `params_leaving_out`'s message adds after the refusal: the parameters left out.
LEFT_OUT_PREFIX = " Shown without "


def params_leaving_out(parse: Callable[[Any], Any], query: Any, default: Any = None) -> tuple[Any, str | None, Any]:
    """(parsed parameters, None, query), or, when parameters are refused, the query parsed
    without them: (parameters, the message, the query kept). The filters that remain still
    apply, so a stale sort or a deleted segment in a bookmark shows the figures of the rest,
    never the organisation's unfiltered ones under pickers that still name a filter. When the
    refusal names nothing that can be left out, `default` is parsed instead (and returned as
    the query kept). A page shows the message next to its filters, as a 400."""
    try:
        return parse(query), None, query
    except DomainError as exc:
        first = refused = exc
    kept = query.copy() if hasattr(query, "copy") else dict(query)
    left_out: list[str] = []
    for _ in range(LEAVE_OUT_ROUNDS):
        names = [name for name in (refused.errors or {}) if name in kept]
        if not names:
            break
        for name in names:
            kept.pop(name, None)
        left_out += names
        try:
            parsed = parse(kept)
        except DomainError as exc:
            refused = exc
            continue
        return parsed, f"{first.detail}{LEFT_OUT_PREFIX}{', '.join(left_out)}.", kept
    fallback = {} if default is None else default
    return parse(fallback), first.detail, fallback


def params_or_default(parse: Callable[[Any], Any], query: Any, default: Any = None) -> tuple[Any, str | None]:
    """`params_leaving_out` without the query kept."""
    parsed, error, _ = params_leaving_out(parse, query, default)
    return parsed, error


def form_add_domain_error(form: Any, exc: DomainError) -> None:
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


def page_get(paginator: Paginator, number: Any) -> Page:
    """`paginator.get_page(number)`, except that a number below 1 is the first page (Django's
    would be the last). A page number is a link, never refused: a stale or edited one shows
    the nearest page."""
    try:
        wanted = int(number)
    except (TypeError, ValueError):
        wanted = 1
    return paginator.get_page(max(1, wanted))


class _Counted:
    """The rows of a query that pages itself, as `Paginator` sees them: only their total."""

    def __init__(self, total: int) -> None:
        self.total = total

    def count(self) -> int:
        return self.total


def page_fetched(fetch: Callable[[int], tuple[list, int]], *, number: int, per_page: int) -> Page:
    """A Django `Page` of rows the database cuts itself: `fetch(number)` answers (that page's
    rows, the total) from one query, so `Paginator` only does the arithmetic, without a second
    COUNT or slice. Past the last page it is the last page, as `Paginator.get_page`, fetched
    again."""
    rows, total = fetch(number)
    # Paginator asks an object list for count() before anything else, and needs nothing more here.
    paginator: Paginator[Any] = Paginator(_Counted(total), per_page)  # type: ignore[arg-type]
    if number > paginator.num_pages:
        number = paginator.num_pages
        rows = fetch(number)[0] if total else []
    return Page(rows, number, paginator)
