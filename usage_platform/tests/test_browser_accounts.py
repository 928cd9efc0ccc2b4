"""Accounts and one Account in a real Chromium (Playwright) against the live test server:
the empty state, the table with its at-risk flags, the at-risk filter, sorting, and an
account's page with its weekly chart, people and features.

Screenshots: accounts, account_detail (var/screenshots/, docs/screenshots/ with UPDATE_SCREENSHOTS=1)."""

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from playwright.sync_api import expect

from analytics import rollup
from analytics.tests.factories import end_user, feature
from conftest import browser_login, client_for, screenshot, wait_until
from core.days import today
from telemetry.models import Account, UsageEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# (external id, name, users, events a day before, events a day now): two fall by 30 % or more.
COMPANIES = (
    ("northwind", "Northwind Traders", 6, 20, 26),
    ("contoso", "Contoso", 4, 30, 12),
    ("fabrikam", "Fabrikam", 5, 18, 19),
    ("tailspin", "Tailspin Toys", 3, 10, 6),
    ("litware", "Litware", 2, 8, 9),
    ("woodgrove", "Woodgrove Bank", 3, 0, 7),
)
DAYS_AGO_BEFORE = (40, 36, 33)
DAYS_AGO_NOW = (12, 8, 4)


def _usage(org):
    keys = ("search", "export", "dashboards", "billing", "sharing")
    features = [feature(org, key) for key in keys]
    days = set()
    rows = []
    for a, (external_id, name, users, before, now) in enumerate(COMPANIES):
        account = Account.objects.create(organization=org, external_id=external_id, name=name)
        people = [end_user(org, f"{external_id}-{i}", account=account) for i in range(users)]
        for per_day, days_ago in [(before, d) for d in DAYS_AGO_BEFORE] + [(now, d) for d in DAYS_AGO_NOW]:
            day = today() - timedelta(days=days_ago)
            days.add(day)
            for n in range(per_day):
                rows.append(
                    UsageEvent(
                        uuid=uuid.uuid4(),
                        organization=org,
                        feature=features[(n + a) % (2 + a % 3)],
                        end_user=people[n % users],
                        event_type="interaction",
                        session_id=f"{external_id}-{days_ago}-{n % users}",
                        session_duration=30 + n,
                        timestamp=datetime.combine(day, time(9 + n % 8, n % 60), tzinfo=UTC),
                    )
                )
    UsageEvent.objects.bulk_create(rows)
    for day in days:
        rollup.rollup_day(day, org)


def test_accounts_pages(browser_page, live_server, analyst_user, org):
    page = browser_page
    browser_login(page, live_server, analyst_user)
    page.goto(f"{live_server.url}/accounts/")
    page.wait_for_selector("[data-testid=accounts-empty]")
    assert "No accounts yet" in page.inner_text("[data-testid=accounts-empty]")

    _usage(org)
    page.click("nav a:has-text('Accounts')")
    page.wait_for_selector("[data-testid=accounts-table]")
    assert page.locator("[data-testid=account-row]").count() == len(COMPANIES)
    assert page.locator("[data-testid=at-risk]").count() == 2
    screenshot(page, "accounts")

    page.select_option("[data-testid=account-at-risk]", "true")
    # (No wait_for_function: the page's CSP forbids the eval it needs.)
    expect(page.locator("[data-testid=account-row]")).to_have_count(2)
    assert "at_risk=true" in page.url

    # Trend: highest first, then (a second click) the steepest fall first; the filter stays.
    page.click("[data-testid=account-sort-trend_pct]")
    page.wait_for_selector("th[aria-sort=descending] [data-testid=account-sort-trend_pct]")
    assert page.locator("[data-testid=account-row]").first.inner_text().startswith("Tailspin Toys")
    page.click("[data-testid=account-sort-trend_pct]")
    page.wait_for_selector("th[aria-sort=ascending] [data-testid=account-sort-trend_pct]")
    assert page.locator("[data-testid=account-row]").first.inner_text().startswith("Contoso")
    assert page.locator("[data-testid=account-row]").count() == 2

    page.click("[data-testid=account-row] a:has-text('Contoso')")
    page.wait_for_selector("[data-testid=chart-account-weekly]")
    assert page.inner_text("[data-testid=account-active-users]") == "4"
    assert page.locator("[data-testid=account-users] tbody tr").count() == 4
    page.wait_for_load_state("networkidle")
    screenshot(page, "account_detail")


DATASETS = "Chart.getChart(document.querySelector('[data-testid=chart-events]')).data.datasets"


def test_dashboard_by_account_and_filtered_to_one(browser_page, live_server, analyst_user, org):
    """The breakdown picker's "Account" stacks the events per account (the API's split), and
    the account picker narrows the KPIs to one account's people (the API's figures), both
    through htmx without a page load."""
    _usage(org)
    start = today() - timedelta(days=44)
    page = browser_page
    browser_login(page, live_server, analyst_user)
    page.goto(f"{live_server.url}/?start={start}&end={today()}")
    page.evaluate("window.__noReload = 1")
    page.select_option("[data-testid=breakdown-picker]", "account")
    wait_until(page, "location.search.includes('breakdown=account')")
    wait_until(page, f"(() => {{ try {{ return {DATASETS}.length > 1; }} catch (e) {{ return false; }} }})()")
    labels = page.evaluate(f"{DATASETS}.map((d) => d.label)")
    api = (
        client_for(analyst_user)
        .get(f"/api/v1/analytics/usage-summary?start={start}&end={today()}&breakdown=account")
        .json()
    )
    # The API's split, drawn under the accounts' names (the API answers their ids).
    names = {external_id: name for external_id, name, *_ in COMPANIES}
    assert labels == [names.get(row["key"], row["key"]) for row in api["breakdown"]["events"]]
    assert set(labels) == set(names.values())
    page.mouse.move(0, 0)
    screenshot(page, "breakdown-account")

    page.select_option("[data-testid=account-filter]", "contoso")
    wait_until(page, "location.search.includes('account=contoso')")
    wait_until(page, f"(() => {{ try {{ return {DATASETS}.length == 1; }} catch (e) {{ return false; }} }})()")
    mine = (
        client_for(analyst_user)
        .get(f"/api/v1/analytics/usage-summary?start={start}&end={today()}&account=contoso")
        .json()
    )
    assert mine["total_events"]["value"] == 3 * 30 + 3 * 12 and mine["active_users"]["value"] == 4
    wait_until(page, f"document.querySelector('[data-testid=kpi-total_events]').dataset.value == '{3 * 30 + 3 * 12}'")
    assert page.evaluate(f"{DATASETS}.map((d) => d.label)") == ["Contoso"]
    assert page.evaluate("window.__noReload") == 1
    page.mouse.move(0, 0)
    screenshot(page, "account-filter")
