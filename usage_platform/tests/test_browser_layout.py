"""Layout at 1300×900 in Chromium with long names and a busy Insights page: nothing pushes a
control off its card or widens the page, and the Insights tables fit their cards.

Screenshots (taken before the checks, so a failing layout can be seen): layout-alert-rules,
layout-dashboard-segment, layout-funnels-segment, layout-insights (var/screenshots/)."""

import pytest

from analytics import segments
from conftest import browser_login, screenshot, wait_until
from insights.alerts import rules
from usage_platform.tests.test_browser_settings_insights import usage  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 1300, 900
# Names without a space to break at: the hardest case for a layout.
LONG_RULE = ("checkout_conversion_enterprise_accounts_europe_" * 3)[:120]
LONG_SEGMENT = ("adults-over-forty-on-the-annual-plan-via-partners-" * 2)[:100]
LONG_FEATURE = "Search across every workspace, archive and shared drive"
ZSCORES = "[data-testid=zscore-card] canvas"


def box(page, selector):
    return page.locator(selector).first.bounding_box()


def no_horizontal_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


@pytest.fixture
def wide_page(browser_page):
    browser_page.set_viewport_size({"width": WIDTH, "height": HEIGHT})
    return browser_page


def test_a_long_alert_rule_name_keeps_its_buttons_on_the_card(wide_page, live_server, admin_user, org):
    assert len(LONG_RULE) == 120
    rule = rules.alert_rule_create(org, name=LONG_RULE, kind="retention", params={"day": 1, "below": 5})
    page = wide_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/settings/alert-rules/")
    screenshot(page, "layout-alert-rules")
    card = box(page, f"#alert-rule-{rule.pk}")
    for label in ("Edit", "Pause", "Delete"):
        button = box(page, f"#alert-rule-{rule.pk} .actions >> text={label}")
        assert button["x"] >= card["x"] and button["x"] + button["width"] <= card["x"] + card["width"], label
    assert no_horizontal_scroll(page)


@pytest.mark.parametrize("path, shot", [("/", "layout-dashboard-segment"), ("/funnels/", "layout-funnels-segment")])
def test_a_long_segment_name_does_not_widen_the_page(wide_page, live_server, admin_user, org, usage, path, shot):  # noqa: F811
    assert len(LONG_SEGMENT) == 100
    segments.segment_create(org, name=LONG_SEGMENT, filters={"age": ">40"})
    page = wide_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}{path}")
    screenshot(page, shot)
    assert no_horizontal_scroll(page)
    # The picker stays a picker's width; the full name is in its list.
    picker = box(page, "[data-testid=segment-picker]")
    bar = page.locator("[data-testid=segment-picker]").evaluate(
        "el => el.closest('.filters').getBoundingClientRect().right"
    )
    assert picker["width"] <= 320 and picker["x"] + picker["width"] <= bar


def test_insights_tables_fit_their_cards(wide_page, live_server, admin_user, usage):  # noqa: F811
    usage[0].name = LONG_FEATURE
    usage[0].save(update_fields=["name"])
    page = wide_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/insights/")
    wait_until(page, "() => document.querySelectorAll('canvas[data-chart]').length >= 3")
    page.mouse.move(0, 0)
    screenshot(page, "layout-insights")
    assert no_horizontal_scroll(page)
    section = box(page, "#anomalies-section")
    wrap = page.locator("#anomalies-section .table-wrap").first
    # The whole table shows: no scrolling inside its card either.
    assert wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
    actions = box(page, "#anomalies-section tbody tr .actions-cell")
    assert actions["x"] + actions["width"] <= section["x"] + section["width"]
    what = box(page, "#anomalies-section thead th:nth-child(3)")
    assert what["width"] >= 180, what
    # "Stands out by" holds its phrase on one or two lines, not a word a line.
    line = page.locator("[data-testid=unusual-feature] td:nth-child(3)").first
    lines = line.evaluate("el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)")
    assert lines < 3.5, lines
    # The z-scores chart names its bars in full or cut short with "…", never cut by its edge.
    names = page.evaluate(f"Chart.getChart(document.querySelector('{ZSCORES}')).scales.y.ticks.map((t) => t.label)")
    assert LONG_FEATURE[:23] + "…" in names and all(len(name) <= 24 for name in names), names
