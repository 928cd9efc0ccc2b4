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
