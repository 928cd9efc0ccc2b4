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


def _delivery(org):
    from insights.models import WebhookDelivery

    return WebhookDelivery.objects.create(webhook=_webhook(org), event="anomaly.created", payload={})


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
    "external_id": lambda org, admin: _end_user(org).external_id,
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


@pytest.mark.django_db
@pytest.mark.parametrize("template, params", ROUTES, ids=[t for t, _ in ROUTES])
def test_foreign_object_is_404_for_every_method(template, params):
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

    client_a = client_for(admin_a)
    offered = []
    for method in METHODS:
        kwargs = {} if method == "get" else {"data": PLAUSIBLE_BODY, "format": "json"}
        response = getattr(client_a, method)(url, **kwargs)
        if response.status_code == 405:
            continue
        offered.append(method)
        assert response.status_code == 404, (
            f"{method.upper()} {url} as another organisation's admin answered {response.status_code}: "
            f"{response.content[:300]!r}"
        )
        assert set(response.json()) == {"detail", "errors"}, response.content

    # The walk proves something only if the object is reachable by its own organisation:
    # org B's admin must not get 404 for the same URL (read first; delete if that is all).
    if known and offered:
        client_b = client_for(admin_b)
        method = "get" if "get" in offered else ("delete" if "delete" in offered else None)
        if method is not None:
            response = getattr(client_b, method)(url)
            assert response.status_code != 404, (
                f"{method.upper()} {url} answered 404 to the object's own organisation: the factory for "
                f"{list(params)} does not make the object this route expects"
            )
