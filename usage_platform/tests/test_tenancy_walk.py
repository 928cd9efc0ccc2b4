"""Every API route that takes an object id answers 404 for another organisation's object.

The routes are not listed here: they are read from Django's URL resolver, so a route any app
adds later is walked automatically. For each URL kwarg we know how to make a real object of
organisation B (`FACTORIES`); for a kwarg we do not know, a value that exists nowhere is used,
which must also be 404. Organisation A's admin then calls every HTTP method on the URL:
the answer must be 404 (405 = the method is not offered, skipped). Never 200, never 403
(that would confirm the object exists), never 400 (validation before the lookup also leaks),
never 500.
"""

import re
import uuid
from datetime import date

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.converters import IntConverter, UUIDConverter
from django.urls.resolvers import RoutePattern

from conftest import client_for, make_member, make_org
from tenants import services as tenant_services
from tenants.models import Role

API_PREFIX = "api/v1/"
METHODS = ("get", "post", "put", "patch", "delete")

# A body that passes the usual validation of our PATCH/POST endpoints, so a view that
# (wrongly) validates before looking the object up is caught as a non-404 rather than
# hidden behind a 400 about a missing field.
PLAUSIBLE_BODY = {
    "role": Role.ANALYST,
    "status": "acknowledged",
    "active": False,
    "url": "https://hooks.example.com/walk",
    "events": ["anomaly.created"],
    "name": "walk",
}


# --- Route discovery ---------------------------------------------------------------------------

_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")
_REGEX_PARAM = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")


def _pattern_parts(pattern):
    """(template with {name} placeholders, {name: converter or None}) of one URL pattern."""
    if isinstance(pattern, RoutePattern):
        route = str(pattern._route)
        template = _ROUTE_PARAM.sub(lambda m: "{" + m["name"] + "}", route)
        return template, dict(pattern.converters)
    regex = str(pattern._regex).lstrip("^").rstrip("$").removesuffix(r"\Z")
    names = {m["name"]: None for m in _REGEX_PARAM.finditer(regex)}
    template = _REGEX_PARAM.sub(lambda m: "{" + m["name"] + "}", regex).replace("\\", "")
    return template, names


def _walk(patterns, prefix="", kwargs=None):
    for entry in patterns:
        template, params = _pattern_parts(entry.pattern)
        merged = {**(kwargs or {}), **params}
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + template, merged)
        elif isinstance(entry, URLPattern):
            yield prefix + template, merged


def api_routes_with_ids():
    """[(template, {kwarg: converter})] of every /api/v1/ route with at least one kwarg."""
    routes = {}
    for template, params in _walk(get_resolver().url_patterns):
        if template.startswith(API_PREFIX) and params:
            routes.setdefault(template, params)
    return sorted(routes.items())


# --- Objects of organisation B -------------------------------------------------------------------


def _feature(org):
    from telemetry.models import Feature

    return Feature.objects.get_or_create(organization=org, key="walk-feature", defaults={"name": "Walk feature"})[0]


def _webhook(org):
    from insights.models import Webhook

    return Webhook.objects.create(
        organization=org, url="https://hooks.example.com/b", secret="walk-secret", events=["anomaly.created"]
    )


def _anomaly(org):
    from insights.models import Anomaly

    return Anomaly.objects.create(
        organization=org,
        feature=_feature(org),
        date=date.today(),
        detector="walk",
        metric="event_count",
        value=100,
        expected=10,
        score=9,
        severity=Anomaly.Severity.HIGH,
    )


def _end_user(org):
    from telemetry.models import EndUser

    return EndUser.objects.get_or_create(organization=org, external_id="walk-user-b")[0]


def _account(org):
    from telemetry.models import Account

    return Account.objects.get_or_create(organization=org, external_id="walk-account-b")[0]


def _delivery(org):
    from insights.models import WebhookDelivery

    return WebhookDelivery.objects.create(webhook=_webhook(org), event="anomaly.created", payload={})


def _segment(org):
    from analytics.segments import segment_create

    return segment_create(org, name=f"walk-{uuid.uuid4().hex[:8]}", filters={"age": "<18"})


# kwarg → function(org B, org B's admin) → the value to put in the URL. Models are imported
# inside the factories so this test does not depend on apps it does not use.
FACTORIES = {
    "member_id": lambda org, admin: make_member(org, Role.MEMBER).pk,
    "user_id": lambda org, admin: make_member(org, Role.MEMBER).pk,
    "invitation_id": lambda org, admin: (
        tenant_services.invitation_create(
            org=org, email=f"walk-{uuid.uuid4().hex[:8]}@b.example", role=Role.MEMBER, invited_by=admin
        )[0].pk
    ),
    "key_id": lambda org, admin: tenant_services.api_key_create(org=org, name="walk", created_by=admin)[0].pk,
    "webhook_id": lambda org, admin: _webhook(org).pk,
    "delivery_id": lambda org, admin: _delivery(org).pk,
    "anomaly_id": lambda org, admin: _anomaly(org).pk,
    "segment_id": lambda org, admin: _segment(org).pk,
    "external_id": lambda org, admin: _end_user(org).external_id,
    "account_id": lambda org, admin: _account(org).external_id,
    "end_user_id": lambda org, admin: _end_user(org).pk,
    "feature_id": lambda org, admin: _feature(org).pk,
    "feature_key": lambda org, admin: _feature(org).key,
}


def _nonexistent(converter):
    if isinstance(converter, IntConverter):
        return 987654321
    if isinstance(converter, UUIDConverter):
        return uuid.uuid4()
    return "walk-nonexistent-object"


def _url(template, values):
    return "/" + template.format(**values)


ROUTES = api_routes_with_ids()


def test_the_walk_finds_the_routes_it_must_cover():
    templates = {template for template, _ in ROUTES}
    for expected in ("api/v1/org/members/{member_id}", "api/v1/org/invitations/{invitation_id}"):
        assert expected in templates, templates
    assert "api/v1/org/api-keys/{key_id}" in templates


def walk_route(template, params):
    """Problems found on one route (empty = the route keeps tenants apart)."""
    admin_a = make_org("Walk A")
    admin_b = make_org("Walk B")
    org_b = admin_b.organization
    values = {}
    known = True
    for name, converter in params.items():
        if name in FACTORIES:
            values[name] = FACTORIES[name](org_b, admin_b)
        else:
            values[name] = _nonexistent(converter)
            known = False
    url = _url(template, values)

    problems = []
    client_a = client_for(admin_a)
    offered = []
    for method in METHODS:
        kwargs = {} if method == "get" else {"data": PLAUSIBLE_BODY, "format": "json"}
        response = getattr(client_a, method)(url, **kwargs)
        if response.status_code == 405:
            continue
        offered.append(method)
        if response.status_code != 404:
            problems.append(
                f"{method.upper()} {url} as another organisation's admin answered {response.status_code}: "
                f"{response.content[:300]!r}"
            )
        elif set(response.json()) != {"detail", "errors"}:
            problems.append(f"{method.upper()} {url}: 404 not in the API error shape: {response.content[:300]!r}")

    # The walk proves something only if the object is reachable by its own organisation:
    # org B's admin must not get 404 for the same URL (read first; delete if that is all).
    if known and offered:
        client_b = client_for(admin_b)
        method = "get" if "get" in offered else ("delete" if "delete" in offered else None)
        if method is not None and getattr(client_b, method)(url).status_code == 404:
            problems.append(
                f"{method.upper()} {url} answered 404 to the object's own organisation: the factory for "
                f"{list(params)} does not make the object this route expects"
            )
    return problems


@pytest.mark.django_db
@pytest.mark.parametrize("template, params", ROUTES, ids=[t for t, _ in ROUTES])
def test_foreign_object_is_404_for_every_method(template, params):
    problems = walk_route(template, params)
    assert not problems, "\n".join(problems)


# --- The walk itself is tested: it finds nested and regex routes, and it catches leaks ----------


def test_discovery_reads_nested_namespaced_and_regex_routes():
    from django.urls import include, path, re_path

    def view(request, **kwargs):
        raise AssertionError("never called")

    inner = [path("things/<int:thing_id>", view), re_path(r"^tags/(?P<tag>[-\w]+)$", view), path("plain", view)]
    patterns = [path("api/v1/", include((inner, "probe"), namespace="probe")), path("other/<int:x>", view)]
    found = dict(_walk(patterns))
    assert set(found) == {"api/v1/things/{thing_id}", "api/v1/tags/{tag}", "api/v1/plain", "other/{x}"}
    assert isinstance(found["api/v1/things/{thing_id}"]["thing_id"], IntConverter)
    assert found["api/v1/tags/{tag}"] == {"tag": None}


@pytest.mark.django_db
@pytest.mark.urls("usage_platform.tests.urls_probe")
def test_the_walk_catches_a_leaky_route_and_a_validate_first_route():
    routes = dict(api_routes_with_ids())
    leaky = walk_route("api/v1/_probe/leaky-member/{member_id}", routes["api/v1/_probe/leaky-member/{member_id}"])
    assert any("answered 200" in p for p in leaky), leaky
    strict = walk_route(
        "api/v1/_probe/validates-first/{member_id}", routes["api/v1/_probe/validates-first/{member_id}"]
    )
    assert any("PATCH" in p and "answered 400" in p for p in strict), strict
