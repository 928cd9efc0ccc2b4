"""Settings → Alert rules in a real Chromium (Playwright) against the live test server: the
empty state, a rule of each kind added through the HTMX forms, errors shown next to their
field, firing history after a real evaluation, edit, pause and delete.

Screenshot: alert-rules (var/screenshots/, docs/screenshots/ with UPDATE_SCREENSHOTS=1)."""

from datetime import UTC, datetime, time, timedelta

import pytest

from analytics.tests.factories import end_user, event, feature
from conftest import browser_login, screenshot
from insights.alerts import delivery, evaluate
from insights.models import AlertFiring, AlertRule
from insights.tests.helpers import features_make, rollups_make, yesterday
from telemetry.models import Feature

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _at(day, hour=12):
    return datetime.combine(day, time(hour), tzinfo=UTC)


def _checkout_funnel(org, day):
    """Users entering the cart convert 7 in 10 in the baseline weeks, 3 in 10 in the latest
    week whose 7-day conversion window has passed; a week later 3 in 10, then 1 in 10, are
    back (D7 retention)."""
    cart, paid = (Feature.objects.get_or_create(organization=org, key=key)[0] for key in ("cart", "paid"))
    cohorts = (("now", day - timedelta(days=10), 3, 1), ("before", day - timedelta(days=24), 7, 3))
    for prefix, entered_on, converted, returned in cohorts:
        for i in range(10):
            person = end_user(org, f"{prefix}-{i}", first_seen=_at(entered_on))
            event(org, cart, person, _at(entered_on))
            if i < converted:
                event(org, paid, person, _at(entered_on, 14))
            if i < returned:
                event(org, cart, person, _at(entered_on + timedelta(days=7)))


def _add_rule(page, kind_label, name, fields):
    active = f"[data-testid=rule-kinds] a.active:has-text('{kind_label}')"
    # Clicking the kind already shown would swap the form again while it is being filled.
    if page.locator(active).count() == 0:
        page.click(f"[data-testid=rule-kinds] a:has-text('{kind_label}')")
        page.wait_for_selector(active)
    form = "[data-testid=alert-rule-form]"
    page.fill(f"{form} input[name=name]", name)
    for field, value in fields.items():
        selector = f"{form} [name={field}]"
        if page.locator(selector).evaluate("el => el.tagName") == "SELECT":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector(f"text=“{name}” added")


def test_alert_rules_tab(browser_page, live_server, admin_user, org, settings):
    page = browser_page
    page.on("dialog", lambda dialog: dialog.accept())
    # The funnel rule's steps name features (a step naming nothing is refused).
    feature(org, "cart"), feature(org, "paid")
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/settings/")
    page.click("nav.tabs a:has-text('Alert rules')")
    page.wait_for_selector("[data-testid=alert-rules-empty]")

    # A funnel rule without a condition: the error is shown next to the field.
    page.click("[data-testid=rule-kinds] a:has-text('Funnel conversion')")
    page.wait_for_selector("[data-testid=alert-rule-form] input[name=steps]")
    page.fill("[data-testid=alert-rule-form] input[name=name]", "Checkout conversion")
    page.fill("[data-testid=alert-rule-form] input[name=steps]", "cart, paid")
    page.click("[data-testid=alert-rule-form] button[type=submit]")
    page.wait_for_selector("[data-field=below]")
    assert not AlertRule.objects.exists()

    _add_rule(page, "Funnel conversion", "Checkout conversion", {"steps": "cart, paid", "drop_pct": "30"})
    _add_rule(page, "Metric threshold", "Busy day", {"metric": "events", "op": "above", "value": "1500"})
    _add_rule(page, "Retention", "D7 retention floor", {"day": "7", "below": "25"})
    assert set(AlertRule.objects.filter(organization=org).values_list("kind", flat=True)) == {
        "funnel_conversion",
        "metric_threshold",
        "retention",
    }

    # Ten weeks of rollups and a funnel that slipped, evaluated as after a week of rollups.
    features = features_make(org, 4)
    rollups_make(org, features, end=yesterday(), days=70)
    _checkout_funnel(org, yesterday())
    days = [yesterday() - timedelta(days=k) for k in range(6, -1, -1)]
    fired = evaluate.alert_rules_evaluate(org, days)
    delivery.alert_firings_deliver(org, fired)
    assert {f.rule.name for f in fired} >= {"Busy day", "Checkout conversion"}

    page.reload()
    busy = page.locator("[data-testid=alert-rule]", has_text="Busy day")
    assert busy.locator("[data-testid=firings] tbody tr").count() == min(
        5, AlertFiring.objects.filter(rule__name="Busy day").count()
    )
    assert "down" in page.locator("[data-testid=alert-rule]", has_text="Checkout conversion").inner_text()
    assert "Sent" in busy.inner_text()
    screenshot(page, "alert-rules")

    # Edit, pause, delete.
    busy.locator("a:has-text('Edit')").click()
    page.wait_for_selector("text=Edit “Busy day”")
    page.fill("[data-testid=alert-rule-form] input[name=value]", "2500")
    page.click("[data-testid=alert-rule-form] button[type=submit]")
    page.wait_for_selector("text=“Busy day” saved")
    assert AlertRule.objects.get(name="Busy day").params["value"] == 2500.0

    page.locator("[data-testid=alert-rule]", has_text="D7 retention floor").locator("button:has-text('Pause')").click()
    page.wait_for_selector("text=is now paused")
    assert AlertRule.objects.get(name="D7 retention floor").active is False
    page.locator("[data-testid=alert-rule]", has_text="D7 retention floor").locator("button:has-text('Delete')").click()
    page.wait_for_selector("text=Alert rule deleted")
    assert not AlertRule.objects.filter(name="D7 retention floor").exists()
