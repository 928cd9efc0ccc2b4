"""Django-level error handlers: JSON in the API shape under /api/, friendly pages elsewhere."""

from django.shortcuts import render

from .exceptions import json_error


def _wants_json(request):
    return request.path.startswith("/api/") or request.path.startswith("/health")


def bad_request(request, exception=None):
    if _wants_json(request):
        return json_error("Bad request.", 400)
    return render(request, "errors/400.html", status=400)


def permission_denied(request, exception=None):
    if _wants_json(request):
        return json_error("You do not have permission to perform this action.", 403)
    return render(request, "errors/403.html", {"message": str(exception or "")}, status=403)


def page_not_found(request, exception=None):
    if _wants_json(request):
        return json_error("Not found.", 404)
    return render(request, "errors/404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return json_error("Internal server error; the failure was logged.", 500)
    return render(request, "errors/500.html", status=500)
