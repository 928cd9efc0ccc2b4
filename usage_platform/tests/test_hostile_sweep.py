"""Every GET route, API and page, with each hostile query parameter that once answered 500
somewhere (issue 11): never a 500, and under /api/ always the error shape.

The routes are read from Django's URL resolver (as the tenancy walk does), so a route added
later is swept too; path parameters get values no row has (ids past a bigint, text with NUL).
The per-endpoint tests (`<app>/tests/test_hostile_input.py`) pin the exact statuses."""

import pytest
from django.urls import get_resolver

from conftest import client_for
from core.testing import page_client
from usage_platform.tests.test_tenancy_walk import _walk

pytestmark = pytest.mark.django_db

BIG = "99999999999999999999"
HOSTILE = [
    ("page", BIG),
    ("page", "²"),
    ("page_size", BIG),
    ("start", "0001-01-01"),
    ("end", "0001-01-01"),
    ("end", "9999-12-31"),
    ("since", "9999-12-31"),
    ("date", "0001-01-01"),
    ("days", BIG),
    ("limit", BIG),
    ("weeks", BIG),
    ("window_days", BIG),
    ("feature", "²"),
    ("feature_id", "²"),
    ("feature", "\x00"),
    ("search", "\x00"),
    ("steps", "a,\x00"),
    ("status", "\x00"),
]
PATH_VALUES = {"int": BIG, "str": "nobody\x00", "path": "no/body\x00"}
SKIP = ("api/schema/", "api/docs/", "admin/", "logout/")  # third-party or not a GET


def _get_routes():
    routes = []
    for template, params in _walk(get_resolver().url_patterns):
        if template.startswith(SKIP) or "(" in template:
            continue
        values = {}
        for name, converter in params.items():
            kind = type(converter).__name__.removesuffix("Converter").lower() if converter else "str"
            values[name] = PATH_VALUES.get(kind, "x")
        routes.append("/" + template.format(**values))
    return sorted(set(routes))


def test_no_get_route_answers_500_to_hostile_parameters(admin_user):
    api, pages = client_for(admin_user), page_client(admin_user)
    api.raise_request_exception = pages.raise_request_exception = False  # list every 500, not the first
    routes = _get_routes()
    assert "/api/v1/analytics/usage-summary" in routes and "/retention/" in routes
    failures = []
    for route in routes:
        is_api = route.startswith(("/api/", "/health"))
        client = api if is_api else pages
        for name, value in HOSTILE:
            response = client.get(route, {name: value})
            if response.status_code >= 500:
                failures.append(f"GET {route}?{name}={value!r} answered {response.status_code}")
            elif is_api and response.status_code >= 400 and response.status_code != 405:
                body = response.json()
                if set(body) != {"detail", "errors"}:
                    failures.append(f"GET {route}?{name}={value!r}: {body}")
    assert not failures, "\n".join(failures)
