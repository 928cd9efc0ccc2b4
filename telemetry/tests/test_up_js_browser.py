"""static/up.js in Debian's Chromium (Playwright), from a page on ANOTHER origin: a small
http.server on its own port serves the customer's page, which loads up.js from the live test
server and sends to it across origins, as a customer's site would.

Checked: track (with the per-tab session and page views), identify and group, a page hide
flushing through sendBeacon (fetch broken on purpose, so nothing else could have sent it),
retries after a 503 and a network error storing once, and a page on an origin the key does
not list refused.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import browser_login, wait_until
from telemetry.models import Account, EndUser, UsageEvent
from tenants import services as tenant_services
from tenants.models import ApiKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The customer's site has no favicon; the browser would ask for one (a 404 in the console).
NO_FAVICON = '<link rel="icon" href="data:,">'
LOADED = "() => typeof (window.up && window.up.track) === 'function'"


class CustomerSite:
    """A web site on 127.0.0.1:<port> whose pages are set by the test (path → HTML)."""

    def __init__(self):
        self.pages: dict[str, str] = {}
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                html = site.pages.get(self.path.split("?")[0])
                body = (html or "not found").encode()
                self.send_response(200 if html else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8" if html else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    site = CustomerSite()
    yield site
    site.close()


def page_html(live_server, key, *, attributes="data-pageviews", before="", title="Shop"):
    """A customer's page loading up.js from the platform with `key` (`attributes` on the tag)."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>{NO_FAVICON}{before}
<script src="{live_server.url}/static/up.js" data-key="{key}" {attributes} defer></script>
</head><body><h1>{title}</h1><a id="next" href="/next">next</a></body></html>"""


def requests_counted(page):
    """Count `page`'s requests in flight (`page.in_flight`), for `quiesce`."""
    page.in_flight = 0

    def started(_request):
        page.in_flight += 1

    def ended(_request):
        page.in_flight -= 1

    page.on("request", started)
    page.on("requestfinished", ended)
    page.on("requestfailed", ended)


def quiesce(page):
    """Leave the customer's page and wait for its requests to the live server to end: a
    tracker's batch still being stored when the test ends could land in the database of the
    tests that follow (on SQLite, once the test's own file is gone: conftest.py's
    `_live_server_database`)."""
    if page.is_closed():
        return
    page.goto("about:blank")
    deadline = time.monotonic() + 5
    while page.in_flight > 0 and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    # The server closes its database connection just after the answer has gone out.
    page.wait_for_timeout(300)


@pytest.fixture
def watched(page):
    """The Playwright page, with what the browser reported (console, failed requests)."""
    page.reported = []
    page.on("console", lambda msg: page.reported.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: page.reported.append(f"page error: {exc}"))
    page.set_default_timeout(10_000)
    requests_counted(page)
    yield page
    quiesce(page)


def events_of(org, **filters):
    return list(UsageEvent.objects.filter(organization=org, **filters).select_related("feature", "end_user"))


def wait_for(page, condition, timeout=10.0):
    """Polls `condition` while Playwright keeps serving the page (its sync API runs route
    handlers and events only inside its own calls, so no time.sleep here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        page.wait_for_timeout(50)
    raise AssertionError("timed out waiting for the platform to store what the page sent")


def test_track_and_page_views_from_another_origin(watched, live_server, site, org, admin_user):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    site.pages["/"] = page_html(live_server, raw)
    page = watched
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    page.evaluate(
        """() => {
        up.identify("user-42", {email: "ada@example.com", age: 36, gender: "female", plan: "pro"});
        up.group("acme", {name: "Acme Ltd", seats: 12});
        up.track("export_pdf", {format: "a4"});
        up.flush();
    }"""
    )
    exported = wait_for(page, lambda: events_of(org, feature__key="export_pdf"))
    views = wait_for(page, lambda: events_of(org, feature__key="page_view"))
    session = page.evaluate("() => sessionStorage.getItem('up_session')")
    event = exported[0]
    assert event.end_user.external_id == "user-42"
    assert event.session_id == session and len(session) == 36
    assert event.metadata == {"format": "a4"}
    assert event.event_type == "interaction"
    view = views[0]
    assert view.event_type == "pageview" and view.session_id == session
    assert view.metadata["path"] == "/" and view.metadata["title"] == "Shop"
    assert view.end_user is None  # before identify: anonymous

    assert not [line for line in page.reported if line.startswith(("error", "page error"))], page.reported

    # The next page of the same tab keeps the session and the user.
    site.pages["/next"] = page_html(live_server, raw, title="Next")
    page.click("#next")
    page.wait_for_load_state("load")
    wait_until(page, LOADED)
    page.evaluate("() => { up.track('search'); up.flush(); }")
    searched = wait_for(page, lambda: events_of(org, feature__key="search"))
    assert searched[0].session_id == session
    assert searched[0].end_user.external_id == "user-42"
    assert UsageEvent.objects.filter(organization=org, feature__key="export_pdf").count() == 1

    # A single-page app's route change is a page view; sign-out starts an anonymous session.
    page.evaluate(
        "() => { history.pushState({}, '', '/app/reports'); up.reset(); up.track('after_sign_out'); up.flush(); }"
    )
    routed = wait_for(page, lambda: events_of(org, feature__key="page_view", metadata__path="/app/reports"))
    assert routed[0].end_user.external_id == "user-42"  # recorded before the reset
    after = wait_for(page, lambda: events_of(org, feature__key="after_sign_out"))[0]
    assert after.end_user is None and after.session_id not in (None, session)


def test_identify_and_group_update_the_end_user_and_its_account(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    site.pages["/"] = page_html(live_server, raw, attributes="")
    page = watched
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    page.evaluate(
        """() => {
        up.identify("user-42", {email: "ada@example.com", age: 36, gender: "female", plan: "pro"});
        up.group("acme", {name: "Acme Ltd", seats: 12});
        up.flush();
    }"""
    )
    person = wait_for(page, lambda: EndUser.objects.filter(organization=org, email="ada@example.com").first())
    assert (person.external_id, person.age, person.gender) == ("user-42", 36, "F")
    assert person.properties == {"plan": "pro"}
    account = wait_for(page, lambda: Account.objects.filter(organization=org, external_id="acme").first())
    assert (account.name, account.properties) == ("Acme Ltd", {"seats": 12})
    assert wait_for(page, lambda: EndUser.objects.get(pk=person.pk).account_id == account.pk)
    assert not UsageEvent.objects.filter(organization=org).exists()  # not usage events


def test_page_hide_flushes_through_send_beacon(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    # No automatic flush for ten minutes, and fetch broken: only sendBeacon can deliver.
    setup = f"""<script>window.up = [["init", {{key: "{raw}", flushInterval: 600000}}]];</script>"""
    site.pages["/"] = page_html(live_server, "", attributes="", before=setup)
    site.pages["/next"] = f"<!doctype html><title>next</title>{NO_FAVICON}<p>next</p>"
    page = watched
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    page.evaluate(
        """() => {
        window.fetch = () => Promise.reject(new TypeError("fetch is off in this test"));
        up.track("checkout", {step: 1});
        up.track("checkout", {step: 2});
    }"""
    )
    page.wait_for_timeout(500)
    assert events_of(org) == []  # still queued in the page

    page.goto(f"{site.origin}/next")  # pagehide
    stored = wait_for(page, lambda: len(events_of(org, feature__key="checkout")) == 2 and events_of(org))
    assert sorted(event.metadata["step"] for event in stored) == [1, 2]

    # A tab switched away (visibilitychange → hidden) flushes too.
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    page.evaluate(
        """() => {
        window.fetch = () => Promise.reject(new TypeError("fetch is off in this test"));
        up.track("hidden_tab");
        Object.defineProperty(document, "visibilityState", {value: "hidden", configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    )
    wait_for(page, lambda: events_of(org, feature__key="hidden_tab"))


def test_retries_after_503_and_network_errors_store_once(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    site.pages["/"] = page_html(live_server, raw, attributes="")
    page = watched
    answers = ["503", "network"]
    attempts = []

    def flaky(route):
        attempts.append(route.request.post_data)
        failure = answers.pop(0) if answers else None
        if failure == "503":
            cors = {"Access-Control-Allow-Origin": site.origin, "Access-Control-Expose-Headers": "Retry-After"}
            route.fulfill(status=503, headers={**cors, "Retry-After": "0"}, json={"detail": "down", "errors": {}})
        elif failure == "network":
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route(f"{live_server.url}/api/v1/events/batch", flaky)
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    page.evaluate("() => { up.track('report_run'); up.flush(); }")
    wait_for(page, lambda: events_of(org, feature__key="report_run"), timeout=15)
    assert len(attempts) == 3
    # The same batch, the same uuids; each send says when it was sent (the clock-skew correction).
    bodies = [json.loads(body) for body in attempts]
    assert all(body.pop("sent_at") for body in bodies)
    assert bodies[0] == bodies[1] == bodies[2]
    page.wait_for_timeout(500)
    assert UsageEvent.objects.filter(organization=org).count() == 1


def test_a_page_on_an_origin_the_key_does_not_list_is_refused(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=["https://shop.example"])
    site.pages["/"] = page_html(live_server, raw)
    page = watched
    responses = []
    page.on("response", lambda r: "/api/v1/events/" in r.url and responses.append(r.status))
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    page.evaluate("() => { up.track('export_pdf'); up.flush(); }")
    deadline = time.monotonic() + 10
    while not any("refused the key (403)" in line for line in page.reported) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    warning = [line for line in page.reported if "refused the key (403)" in line]
    assert warning and site.origin in warning[0], page.reported
    assert 403 in responses
    # It stopped: no retry loop against a refusal.
    count = len(responses)
    page.evaluate("() => { up.track('again'); up.flush(); }")
    page.wait_for_timeout(500)
    assert len(responses) == count
    assert UsageEvent.objects.filter(organization=org).count() == 0


def test_the_settings_pages_key_and_script_tag_work_on_the_customers_site(
    browser_page, live_server, site, admin_user, org
):
    """An admin creates a browser key on Settings → API keys, lists the site's origin in
    place, and pastes the script tag the page shows into the site: page views arrive."""
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/settings/api-keys/")
    page.fill("[data-testid=key-form] input[name=name]", "Web shop")
    page.fill("[data-testid=key-form] textarea[name=allowed_origins]", "https://shop.example")
    page.click("[data-testid=key-form] button[type=submit]")
    tag = page.locator("[data-testid=new-key-script]").inner_text()
    api_key = ApiKey.objects.get(organization=org)
    assert api_key.allowed_origins == ["https://shop.example"]
    assert f'src="{live_server.url}/static/up.js"' in tag and f'data-key="{api_key.prefix}' in tag

    page.click(f"[data-testid=origins-{api_key.pk}] summary")
    page.fill(f"[data-testid=origins-form-{api_key.pk}] textarea", f"https://shop.example\n{site.origin}/")
    page.click(f"[data-testid=origins-form-{api_key.pk}] button[type=submit]")
    page.wait_for_selector("text=accepts browser requests from 2 origins")
    assert page.locator(f"[data-testid=origins-{api_key.pk}] code").all_inner_texts() == [
        "https://shop.example",
        site.origin,
    ]

    site.pages["/"] = f"<!doctype html><html><head><title>Shop</title>{NO_FAVICON}{tag}</head><body>shop</body></html>"
    page.goto(f"{site.origin}/")
    wait_until(page, LOADED)
    view = wait_for(page, lambda: events_of(org, feature__key="page_view"))[0]
    assert view.metadata["url"] == f"{site.origin}/"


def test_the_snippet_in_docs_sdks_md_runs(watched, live_server, site, org):
    """docs/sdks.md's up.js snippet, as written (host and key replaced), on the customer's site."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sdks.md").read_text()
    section = docs[docs.index("## up.js") :]
    snippet = section[section.index("```html") + len("```html") : section.index("```", section.index("```html") + 7)]
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    snippet = snippet.replace("https://usage.example.com", live_server.url).replace("upk_your_key", raw)
    site.pages["/"] = f"<!doctype html><html><head><title>Docs</title>{NO_FAVICON}{snippet}</head><body></body></html>"
    page = watched
    page.goto(f"{site.origin}/")
    exported = wait_for(page, lambda: events_of(org, feature__key="export_pdf"))[0]
    assert exported.end_user.external_id == "user-42" and exported.metadata == {"format": "a4"}
    assert wait_for(page, lambda: events_of(org, feature__key="page_view"))
    assert not [line for line in page.reported if line.startswith(("error", "page error"))], page.reported
