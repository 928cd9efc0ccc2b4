"""Content-Security-Policy and Permissions-Policy on every response.

Django 5.2 has no CSP support (Django 6 adds it, reading the same SECURE_CSP dict). A view
that needs another policy (Swagger UI) sets its own header, which is kept."""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def csp_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


def permissions_header(policy: dict[str, list[str]]) -> str:
    # Structured-field syntax: `self` is a token, origins are quoted strings.
    def allow(origin: str) -> str:
        return origin if origin == "self" or origin == "*" else f'"{origin}"'

    return ", ".join(f"{feature}=({' '.join(allow(o) for o in origins)})" for feature, origins in policy.items())


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._sources: tuple[Any, Any] | None = None
        self._headers: tuple[tuple[str, str], ...] = ()

    def _current(self) -> tuple[tuple[str, str], ...]:
        # Rebuilt only when the settings objects change (tests override them).
        sources = (settings.SECURE_CSP, settings.PERMISSIONS_POLICY)
        if self._sources is None or any(a is not b for a, b in zip(sources, self._sources, strict=True)):
            self._sources = sources
            self._headers = (
                ("Content-Security-Policy", csp_header(sources[0])),
                ("Permissions-Policy", permissions_header(sources[1])),
            )
        return self._headers

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for name, value in self._current():
            if name not in response.headers:
                response.headers[name] = value
        return response


def csp_extended(view: Callable[..., HttpResponse], **extra: list[str]) -> Callable[..., HttpResponse]:
    """`view` answering with the site's policy plus `extra` sources (keyword `img_src` is the
    `img-src` directive), for one route that needs more than the app pages."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        policy = {directive: list(sources) for directive, sources in settings.SECURE_CSP.items()}
        for name, sources in extra.items():
            directive = name.replace("_", "-")
            policy[directive] = [*policy.get(directive, []), *sources]
        response.headers["Content-Security-Policy"] = csp_header(policy)
        return response

    return wrapped
