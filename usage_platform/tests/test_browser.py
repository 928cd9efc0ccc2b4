"""The pages in a real browser (Playwright driving Debian's Chromium against the live test
server): sign-in, the dashboard's figures against the API, filters that re-render through
htmx without a page load, search-as-you-type, logout + back, access rules, and the
1366×768 screenshots (var/screenshots/, or docs/screenshots/ with UPDATE_SCREENSHOTS=1).
`browser_page` fails a test on any console error, page error, failed request or 5xx answer."""

import re
from datetime import timedelta

import pytest

from analytics.tests.pages_data import usage_make
from conftest import browser_login, client_for, screenshot, wait_until
from core.days import today
from telemetry.models import Feature

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

KPI_KEYS = ("total_events", "active_users", "features_tracked", "sessions", "avg_session_duration")
# Points on the events chart, or -1 while htmx swaps the fragment in.
CHART_LABELS = (
    "((c) => (c ? c.data.labels.length : -1))(Chart.getChart(document.querySelector('[data-testid=chart-events]')))"
)


@pytest.fixture
def data(org, member_user):
    usage_make(org, member=member_user)
    return org


def kpis_shown(page):
    return {key: float(page.get_attribute(f"[data-testid=kpi-{key}]", "data-value")) for key in KPI_KEYS}


def kpis_from_api(user, query=""):
    body = client_for(user).get(f"/api/v1/analytics/usage-summary{query}").json()
    return {key: float(body[key]["value"]) for key in KPI_KEYS}


def test_login_shows_dashboard_with_the_apis_numbers(browser_page, live_server, admin_user, data):
    page = browser_page
    page.goto(f"{live_server.url}/login/")
    screenshot(page, "login")
    browser_login(page, live_server, admin_user)
    assert page.url == f"{live_server.url}/"
    assert page.text_content(".org-name").strip() == admin_user.organization.name
    assert page.text_content(".org-role").strip() == "Admin"
    shown = kpis_shown(page)
    assert shown == kpis_from_api(admin_user)
    assert shown["total_events"] > 0
    assert page.evaluate(CHART_LABELS) == 30
    screenshot(page, "dashboard")


def test_date_range_rerenders_cards_and_charts_without_a_page_load(browser_page, live_server, admin_user, data):
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.evaluate("window.__noReload = 1")
    thirty_days = kpis_shown(page)

    page.click("[data-testid=preset-7]")
    wait_until(page, f"{CHART_LABELS} === 7")
    assert page.evaluate("window.__noReload") == 1, "the range change reloaded the page"
    start = re.search(r"start=(\d{4}-\d{2}-\d{2})", page.url).group(1)
    end = re.search(r"end=(\d{4}-\d{2}-\d{2})", page.url).group(1)
    seven_days = kpis_shown(page)
    assert seven_days == kpis_from_api(admin_user, f"?start={start}&end={end}")
    assert seven_days["total_events"] < thirty_days["total_events"]

    # A typed date re-renders too, and the URL keeps every filter.
    earlier = (today() - timedelta(days=59)).isoformat()
    page.fill("[data-testid=start]", earlier)
    wait_until(page, f"location.search.includes('start={earlier}')")
    wait_until(page, f"{CHART_LABELS} === 60")
    page.select_option("#id_gender", "F")
    wait_until(page, "location.search.includes('gender=F')")
    assert f"start={earlier}" in page.url
    assert page.evaluate("window.__noReload") == 1

    # Back returns to the previous filters (the server renders them again).
    page.go_back()
    wait_until(page, "!location.search.includes('gender=F')")
    page.wait_for_load_state("networkidle")
    assert page.input_value("#id_gender") == ""
    assert page.input_value("[data-testid=start]") == earlier


def test_user_search_narrows_the_table(browser_page, live_server, analyst_user, data):
    page = browser_page
    browser_login(page, live_server, analyst_user)
    page.goto(f"{live_server.url}/users/")
    everyone = page.locator("[data-testid=user-row]").count()
    assert everyone >= 15
    screenshot(page, "users")
    page.evaluate("window.__noReload = 1")
    page.click("[data-testid=user-sort-user_id]")
    wait_until(page, "location.search.includes('sort=user_id')")
    page.type("[data-testid=user-search]", "user-00", delay=30)
    wait_until(page, "document.querySelectorAll('[data-testid=user-row]').length === 10")
    # The search kept the sort chosen in the table header.
    assert page.text_content("[data-testid=user-row] a").strip() == "user-000"
    assert "sort=user_id" in page.url
    page.type("[data-testid=user-search]", "3", delay=30)
    wait_until(page, "document.querySelectorAll('[data-testid=user-row]').length === 1")
    assert page.text_content("[data-testid=user-row] a").strip() == "user-003"
    assert "search=user-003" in page.url
    assert page.evaluate("window.__noReload") == 1
    page.click("[data-testid=user-row] a")
    page.wait_for_selector("[data-testid=timeline]")
    assert page.text_content("[data-testid=user-title]").strip() == "user-003"
    screenshot(page, "user_detail")


def test_logout_then_back_shows_the_login_page(browser_page, live_server, admin_user, data):
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/features/")
    page.click("[data-testid=logout]")
    page.wait_for_url(f"{live_server.url}/login/")
    page.go_back()
    page.wait_for_load_state("networkidle")
    assert "/login/" in page.url
    assert page.is_visible("input[name=password]")
    assert page.locator("[data-testid=features-table]").count() == 0


def test_anonymous_is_sent_to_login(browser_page, live_server, db):
    page = browser_page
    page.goto(f"{live_server.url}/retention/")
    assert page.url == f"{live_server.url}/login/?next=/retention/"


def test_member_sees_own_activity_and_a_403_page_elsewhere(page, live_server, member_user, data):
    # The plain `page`: a 403 document is expected here, and Chromium reports it in the console.
    browser_login(page, live_server, member_user)
    assert page.url == f"{live_server.url}/users/"
    assert page.locator("[data-testid=user-row]").count() == 1
    assert page.text_content("h1").strip() == "My activity"
    screenshot(page, "my_activity")
    response = page.goto(f"{live_server.url}/features/")
    assert response.status == 403
    assert "analyst or admin role" in page.text_content("body")


def test_another_organisations_feature_is_a_404_page(page, live_server, admin_user, other_org, data):
    usage_make(other_org, days=3, users=2)
    foreign = Feature.objects.filter(organization=other_org).first()
    browser_login(page, live_server, admin_user)
    response = page.goto(f"{live_server.url}/features/{foreign.pk}/")
    assert response.status == 404
    assert "Page not found" in page.text_content("body")


def test_pages_screenshots(browser_page, live_server, admin_user, org, data):
    # Named before any page is read (the figures, names included, are cached).
    Feature.objects.filter(organization=org, key="search").update(name="Full-text search")
    page = browser_page
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/features/")
    assert page.locator("svg.sparkline").count() == 4
    page.click("[data-testid=sort-name]")
    wait_until(page, "location.search.includes('sort=name')")
    page.mouse.move(0, 0)  # no hover underline in the picture
    screenshot(page, "features")

    page.click("text=Full-text search")
    page.wait_for_selector("[data-testid=chart-feature-usage]")
    page.wait_for_selector("[data-testid=forecast] canvas, [data-testid=forecast] .empty-small")
    page.wait_for_load_state("networkidle")
    screenshot(page, "feature_detail")

    page.goto(f"{live_server.url}/retention/")
    assert page.locator("[data-testid=retention-table] tbody tr").count() == 12
    screenshot(page, "retention")

    page.goto(f"{live_server.url}/funnels/")
    page.evaluate("window.__noReload = 1")
    inputs = page.locator("[data-testid=step-input]")
    names = page.locator("[data-testid=step-name]")
    inputs.nth(0).fill("search")
    assert names.nth(0).inner_text() == "Full-text search"  # the key's feature, as typed
    inputs.nth(1).fill("signup_completed")
    assert "event type" in names.nth(1).inner_text()
    inputs.nth(1).fill("reports")
    page.click("[data-testid=add-step]")
    assert names.last.inner_text() == ""  # a new step names nothing yet
    inputs.nth(2).fill("export")
    page.click("[data-testid=funnel-submit]")
    page.wait_for_selector("[data-testid=funnel-bars]")
    assert page.locator(".funnel-step").count() == 3
    assert page.evaluate("window.__noReload") == 1
    assert "step=export" in page.url
    screenshot(page, "funnels")
    # Nothing is loaded from outside the site (vendored htmx and Chart.js, system fonts).
    outside = [url for url in requested if not url.startswith(live_server.url)]
    assert not outside, outside
    assert any("/static/vendor/htmx-" in url for url in requested)


def test_a_new_organisation_sees_how_to_send_its_first_event(browser_page, live_server, other_admin):
    page = browser_page
    browser_login(page, live_server, other_admin)
    assert page.is_visible("[data-testid=empty-state]")
    assert "/api/v1/events/track" in page.text_content("[data-testid=empty-state]")
    screenshot(page, "dashboard_empty")


def test_older_timeline_events_load_in_place_and_today_is_drawn_partial(browser_page, live_server, analyst_user, data):
    from django.utils import timezone

    from analytics.tests.factories import end_user, event, feature

    f, user, now = feature(data, "long-read"), end_user(data, "busy"), timezone.now()
    for i in range(230):
        event(data, f, user, now - timedelta(minutes=i), session=f"s{i // 60}")
    page = browser_page
    browser_login(page, live_server, analyst_user)
    # The dashboard's last point is today's, still filling up: dashed, with the note under it.
    assert page.locator("[data-testid=partial-note]").first.is_visible()
    dashed = "Chart.getChart(document.querySelector('[data-testid=chart-events]')).data.datasets[0].segment"
    assert page.evaluate(f"typeof {dashed}.borderDash") == "function"

    page.goto(f"{live_server.url}/users/busy/")
    assert "230 events in 4 sessions" in page.text_content("[data-testid=timeline-count]")
    assert page.locator("[data-testid=timeline] time").count() == 200
    page.evaluate("window.__noReload = 1")
    page.click("[data-testid=timeline-older]")
    wait_until(page, "document.querySelectorAll('[data-testid=timeline] time').length === 230")
    assert page.locator("[data-testid=timeline-older]").count() == 0
    assert page.locator(".session-continued").count() == 1
    assert page.evaluate("window.__noReload") == 1
