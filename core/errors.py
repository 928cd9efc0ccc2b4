"""Django-level error handlers: JSON in the API shape under /api/, friendly pages elsewhere."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from .exceptions import DomainError, database_failure, json_error

_PAGE_TEMPLATES = {403: "errors/403.html", 404: "errors/404.html", 503: "errors/503.html"}


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/health")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return json_error("Bad request.", 400)
    return render(request, "errors/400.html", status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return json_error("You do not have permission to perform this action.", 403)
    return render(request, "errors/403.html", {"message": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return json_error("Not found.", 404)
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return json_error("Internal server error; the failure was logged.", 500)
    return render(request, "errors/500.html", status=500)


class ErrorMiddleware:
    """What DRF's exception handler does for the API, for every other view (pages, health):
    a query stopped by `statement_timeout` or an unreachable database answers 503 with
    Retry-After, a value the database refuses 400, a service's DomainError its own status —
    as JSON under /api/, as an error page elsewhere — instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        failure = database_failure(exception, request)
        if failure is not None:
            status, detail, headers = failure
            errors: dict[str, list[str]] = {}
        elif isinstance(exception, DomainError):
            status, detail, headers = exception.status_code, exception.detail, exception.headers
            errors = exception.errors
        else:
            return None
        response: HttpResponse
        if _wants_json(request):
            response = json_error(detail, status, errors)
        else:
            template = _PAGE_TEMPLATES.get(status, "errors/400.html")
            response = render(request, template, {"message": detail}, status=status)
        for header, value in headers.items():
            response[header] = value
        return response
