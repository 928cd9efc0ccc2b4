"""The URL map: every route stays where it is, and `usage_platform/urls.py` names the file
that serves each one.

`routes.txt` is the committed list of every route the resolver knows (admin included). A
route that appears, moves or disappears fails `test_every_route_is_the_committed_one`; when
the change is meant, rewrite the list with
`python -c "from usage_platform.tests.test_urls import write_routes; write_routes()"`
(with DJANGO_SETTINGS_MODULE set) and review the diff."""

from pathlib import Path

from django.urls import URLPattern, URLResolver, get_resolver

ROUTES_FILE = Path(__file__).with_name("routes.txt")


def routes(patterns=None, prefix=""):
    """Every route string (include prefixes joined), in the order Django tries them."""
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            found += routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            found.append(prefix + str(entry.pattern))
    return found


def write_routes():
    import django

    django.setup()
    ROUTES_FILE.write_text("".join(f"{route}\n" for route in sorted(routes())))


def test_every_route_is_the_committed_one():
    assert sorted(routes()) == ROUTES_FILE.read_text().splitlines()


def test_ingestion_is_tried_first():
    # Django tries patterns in order, and events/track is most of the traffic.
    assert routes()[:2] == ["api/v1/events/track", "api/v1/events/batch"]


def test_each_include_has_its_own_prefix_and_namespace():
    """One hop from usage_platform/urls.py to the file serving a URL: every include names its
    prefix and namespace, no two share a prefix, and only the dashboard's pages own the root."""
    from usage_platform import urls

    for level in (urls.urlpatterns, urls.api_v1):
        includes = [(str(entry.pattern), entry.namespace) for entry in level if isinstance(entry, URLResolver)]
        prefixes = [prefix for prefix, _ in includes]
        assert len(prefixes) == len(set(prefixes)), includes
        assert all(namespace for _, namespace in includes), includes
    root = [entry for entry in urls.urlpatterns if isinstance(entry, URLResolver) and not str(entry.pattern)]
    assert [entry.namespace for entry in root] == ["analytics"]
    assert root[0].urlconf_name.__name__ == "analytics.urls_pages"


def test_url_names_are_namespaced_by_their_include():
    from django.urls import reverse

    assert reverse("api:events:track") == "/api/v1/events/track"
    assert reverse("api:org:organization") == "/api/v1/org"
    assert reverse("api:org:member", args=[3]) == "/api/v1/org/members/3"
    assert reverse("api:webhooks:list") == "/api/v1/org/webhooks"
    assert reverse("api:webhooks:deliveries", args=[3]) == "/api/v1/org/webhooks/3/deliveries"
    assert reverse("api:ai:anomaly", args=[3]) == "/api/v1/ai/anomalies/3"
    assert reverse("analytics:dashboard") == "/"
    assert reverse("insights:index") == "/insights/"
    assert reverse("settings:api-keys") == "/settings/api-keys/"
    assert reverse("webhook-settings:toggle", args=[3]) == "/settings/webhooks/3/toggle/"


def test_favicon_ico_leads_to_the_sites_icon(client):
    """Pages that name no icon (the admin, Swagger UI) make the browser ask for /favicon.ico."""
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/img/favicon.svg"
