"""posthog-js, unchanged, in Chromium from a page on another origin: the customer's page
loads PostHog's own browser build (vendored for this test only, telemetry/tests/vendor/,
Apache-2.0, from the npm package posthog-js 1.449.2) and points `api_host` at the live test
server. Its gzipped text/plain batches to `/e/` and its sendBeacon on page leave land through
the SDK-compatible routes (telemetry.compat); persons and groups become end users and accounts."""

from pathlib import Path

import pytest

from telemetry.models import Account, EndUser
from telemetry.tests.test_up_js_browser import NO_FAVICON, CustomerSite, events_of, quiesce, requests_counted, wait_for
from tenants import services as tenant_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

POSTHOG_JS = Path(__file__).with_name("vendor") / "posthog-js-1.449.2" / "array.no-external.js"
# What a team pointing posthog-js at the platform sets: features that need PostHog's own
# servers (flags, surveys, recordings, remote config) off. `opt_out_useragent_filter`: headless
# Chromium's user agent reads as a bot, whose events posthog-js drops.
OPTIONS = """{
    api_host: "%(host)s",
    autocapture: false,
    capture_pageleave: false,
    disable_session_recording: true,
    disable_surveys: true,
    advanced_disable_flags: true,
    disable_external_dependency_loading: true,
    opt_out_useragent_filter: true
}"""


@pytest.fixture
def site():
    site = CustomerSite()
    site.pages["/posthog.js"] = POSTHOG_JS.read_text()
    yield site
    site.close()


def shop_page(live_server, key, calls=""):
    options = OPTIONS % {"host": live_server.url}
    return f"""<!doctype html><html><head><title>Shop</title>{NO_FAVICON}
<script src="/posthog.js"></script>
<script>posthog.init("{key}", {options});{calls}</script>
</head><body><a id="next" href="/next">next</a></body></html>"""


@pytest.fixture
def watched(page):
    page.reported = []
    page.on("console", lambda msg: msg.type == "error" and page.reported.append(msg.text))
    page.on("pageerror", lambda exc: page.reported.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and page.reported.append(f"{r.status} {r.url}"))
    requests_counted(page)
    yield page
    quiesce(page)


def test_posthog_js_capture_identify_group_and_page_views(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    site.pages["/"] = shop_page(live_server, raw)
    page = watched
    page.goto(f"{site.origin}/")
    page.evaluate(
        """() => {
        posthog.identify("user-42", {email: "ada@example.com", plan: "pro"});
        posthog.group("company", "acme", {name: "Acme Ltd"});
        posthog.capture("export_pdf", {format: "a4"});
    }"""
    )
    exported = wait_for(page, lambda: events_of(org, feature__key="export_pdf"), timeout=15)[0]
    session = page.evaluate("() => posthog.get_session_id()")
    assert exported.end_user.external_id == "user-42"
    assert exported.session_id == session
    assert exported.metadata["format"] == "a4"
    views = wait_for(page, lambda: [e for e in events_of(org) if e.feature.name == "$pageview"], timeout=15)
    assert views[0].session_id == session

    person = wait_for(page, lambda: EndUser.objects.filter(organization=org, email="ada@example.com").first())
    assert person.external_id == "user-42" and person.properties.get("plan") == "pro"
    account = wait_for(page, lambda: Account.objects.filter(organization=org, external_id="acme").first())
    assert account.name == "Acme Ltd"
    assert wait_for(page, lambda: EndUser.objects.get(pk=person.pk).account_id == account.pk)
    assert not page.reported, page.reported


def test_posthog_js_flushes_with_send_beacon_when_the_page_goes(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    # fetch and XMLHttpRequest broken before posthog-js starts: only sendBeacon can deliver.
    broken = (
        'window.fetch = () => Promise.reject(new TypeError("fetch is off in this test"));'
        'XMLHttpRequest.prototype.send = function () { throw new TypeError("XHR is off in this test"); };'
    )
    site.pages["/"] = shop_page(live_server, raw).replace("<script src=", f"<script>{broken}</script><script src=", 1)
    site.pages["/next"] = f"<!doctype html><title>next</title>{NO_FAVICON}<p>next</p>"
    page = watched
    page.goto(f"{site.origin}/")
    page.evaluate("() => posthog.capture('checkout', {step: 1})")
    page.wait_for_timeout(500)
    assert events_of(org) == []  # still in posthog-js's queue
    page.click("#next")
    checkout = wait_for(page, lambda: events_of(org, feature__key="checkout"), timeout=15)
    assert checkout[0].metadata["step"] == 1


def test_posthog_js_from_an_unlisted_origin_is_refused(watched, live_server, site, org):
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=["https://shop.example"])
    site.pages["/"] = shop_page(live_server, raw, calls="posthog.capture('export_pdf');")
    page = watched
    statuses = []
    page.on("response", lambda r: "/e/" in r.url and statuses.append(r.status))
    page.goto(f"{site.origin}/")
    wait_for(page, lambda: 403 in statuses, timeout=15)
    assert events_of(org) == []


def test_the_snippet_in_docs_sdks_md_runs(watched, live_server, site, org):
    """docs/sdks.md's posthog-js snippet as written (script path, host and key replaced; the
    headless user agent opted in, which posthog-js would otherwise drop as a bot)."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sdks.md").read_text()
    section = docs[docs.index("## posthog-js") :]
    start = section.index("```html") + len("```html")
    snippet = section[start : section.index("```", start)]
    _, raw = tenant_services.api_key_create(org=org, name="site", allowed_origins=[site.origin])
    snippet = (
        snippet.replace("/assets/posthog.js", "/posthog.js")
        .replace("https://usage.example.com", live_server.url)
        .replace("upk_your_key", raw)
        .replace("api_host:", "opt_out_useragent_filter: true, api_host:")
    )
    site.pages["/"] = f"<!doctype html><html><head><title>Docs</title>{NO_FAVICON}{snippet}</head><body></body></html>"
    page = watched
    page.goto(f"{site.origin}/")
    exported = wait_for(page, lambda: events_of(org, feature__key="export_pdf"), timeout=15)[0]
    assert exported.end_user.external_id == "user-42" and exported.metadata["format"] == "a4"
    assert wait_for(page, lambda: EndUser.objects.filter(organization=org, email="ada@example.com").exists())
    assert not page.reported, page.reported
