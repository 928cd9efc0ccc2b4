"""The filter bar and the breakdown picker in Chromium: a breakdown redraws the dashboard's
charts stacked with a legend, a saved segment chosen in the picker re-renders the figures
through htmx (no page load) with the API's numbers; screenshots `breakdown` and
`segment-picker`."""

import pytest

from analytics import segments
from analytics.tests.pages_data import usage_make
from conftest import browser_login, client_for, screenshot, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DATASETS = "Chart.getChart(document.querySelector('[data-testid=chart-events]')).data.datasets"


@pytest.fixture
def data(org, member_user):
    usage_make(org, member=member_user)
    return org


def test_breakdown_and_segment_picker(browser_page, live_server, admin_user, data):
    saved = segments.segment_create(data, name="Adults over 40", filters={"age": ">40"})
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.evaluate("window.__noReload = 1")

    page.select_option("[data-testid=breakdown-picker]", "age")
    wait_until(page, "location.search.includes('breakdown=age')")
    wait_until(page, f"(() => {{ try {{ return {DATASETS}.length > 1; }} catch (e) {{ return false; }} }})()")
    labels = page.evaluate(f"{DATASETS}.map((d) => d.label)")
    assert set(labels) <= {"<18", "18-40", ">40", "(none)", "other"} and len(labels) >= 2
    events_chart = "Chart.getChart(document.querySelector('[data-testid=chart-events]'))"
    assert page.evaluate(f"{events_chart}.options.scales.y.stacked")
    page.mouse.move(0, 0)
    screenshot(page, "breakdown")

    page.select_option("[data-testid=breakdown-picker]", "")
    wait_until(page, "!location.search.includes('breakdown=age')")
    page.select_option("[data-testid=segment-picker]", str(saved.pk))
    wait_until(page, f"location.search.includes('segment={saved.pk}')")
    wait_until(page, "document.querySelector('[data-testid=kpi-total_events]') !== null")
    api = client_for(admin_user).get(f"/api/v1/analytics/usage-summary?segment={saved.pk}").json()
    wait_until(
        page,
        f"document.querySelector('[data-testid=kpi-total_events]').dataset.value == '{api['total_events']['value']}'",
    )
    assert page.evaluate("window.__noReload") == 1  # htmx swapped the fragment in
    page.mouse.move(0, 0)
    screenshot(page, "segment-picker")


def test_save_the_filters_chosen_as_a_segment(browser_page, live_server, admin_user, data):
    """The "Save as segment" link takes the filters as the form holds them after htmx changes (not the
    page's first query), names them, and comes back with the segment picked."""
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.select_option("[data-testid=gender-filter]", "F")
    wait_until(page, "location.search.includes('gender=F')")
    page.click("[data-testid=segment-save-link]")
    page.wait_for_url("**/segments/new/**")
    assert page.locator("[data-testid=segment-filters] li").all_inner_texts() == ["gender = F"]
    page.fill("#id_segment_name", "Women")
    page.click("[data-testid=segment-save]")
    page.wait_for_url("**/?segment=*")
    saved = segments.segment_list(data).get(name="Women")
    assert saved.filters == {"gender": "F"}
    assert page.locator("[data-testid=segment-summary]").inner_text().startswith("This segment: gender = F")
    screenshot(page, "segment-saved")
