"""Settings and Insights pages in a real Chromium (Playwright) against the live test server.

`browser_page` fails a test on any console error, failed request or 5xx. Screenshots at
1366×768 go to var/screenshots/ (docs/screenshots/ for the README with UPDATE_SCREENSHOTS=1).
"""

import subprocess
from datetime import timedelta

import pytest

from conftest import PASSWORD, browser_login, make_member, screenshot, wait_until
from insights import services as insight_services
from insights import webhooks as insight_webhooks
from insights.models import Anomaly, WebhookDelivery
from insights.tests.helpers import (
    end_users_make,
    events_make,
    features_make,
    rollups_make,
    same_weekdays_before,
    yesterday,
)
from telemetry.models import UsageEvent
from tenants import services as tenant_services
from tenants.models import Role, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def usage(org):
    """Ten weeks of rollups for six features with a spike and a drop, and the raw events
    that explain them (the spike is an export burst, the drop is iOS going quiet),
    anomalies detected."""
    features = features_make(org, 6)
    names = ["Search", "Checkout", "Reports", "Exports", "Dashboards", "Alerts"]
    for feature, name in zip(features, names, strict=True):
        feature.name = name
        feature.save(update_fields=["name"])
    end = yesterday()
    spike_day, drop_day = end - timedelta(days=1), end - timedelta(days=3)
    rollups_make(org, features, end=end, days=70, spikes={(0, spike_day): 4.0, (3, drop_day): 0.2})
    people = end_users_make(org)
    events_make(org, features[0], people, days=[spike_day, *same_weekdays_before(spike_day)], per_day=30)
    events_make(org, features[0], people, days=[spike_day], per_day=90, event_type="export")
    events_make(org, features[3], people, days=[drop_day, *same_weekdays_before(drop_day)], per_day=8)
    events_make(org, features[3], people, days=same_weekdays_before(drop_day), per_day=32, metadata={"platform": "ios"})
    insight_services.anomalies_detect(org)
    return features


def accept_dialogs(page):
    # hx-confirm asks before destructive actions; the tests say yes.
    page.on("dialog", lambda dialog: dialog.accept())


def test_acknowledging_an_anomaly_persists(browser_page, live_server, admin_user, org, usage):
    page = browser_page
    anomaly = insight_services.anomalies_list(org, status="open", detector="timeseries").first()
    assert anomaly is not None
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/insights/")
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=insight-source]").inner_text() == "Heuristic"
    wait_until(page, "() => document.querySelectorAll('canvas[data-chart]').length >= 3")
    why = page.locator("[data-testid=anomaly-why]").all_inner_texts()
    assert why[0].startswith("Mostly event type “export”") and "Mostly event platform = ios" in why[2]
    assert page.locator("[data-testid=unusual-feature]").count() >= 1
    screenshot(page, "insights")

    row = page.locator(f"#anomaly-{anomaly.pk}")
    url_before = page.url
    open_before = int(page.locator("[data-testid=open-anomalies]").inner_text().split()[0])
    row.locator("[data-action=acknowledged]").click()
    page.wait_for_selector(f"#anomaly-{anomaly.pk}[data-status=acknowledged]")
    assert page.url == url_before  # swapped in place, no navigation
    assert row.locator("[data-testid=anomaly-status]").inner_text() == "Acknowledged"
    # The heading's open count follows at once (out of band), not after a reload.
    assert page.locator("[data-testid=open-anomalies]").inner_text() == f"{open_before - 1} open"
    # So does the narrative, which says how many are open.
    left = open_before - 1
    said = f"{left} open anomal{'y' if left == 1 else 'ies'};" if left else "No open anomalies."
    wait_until(page, f"() => document.querySelector('#narrative').innerText.includes({said!r})")
    assert page.locator("#narrative").count() == 1

    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.locator(f"#anomaly-{anomaly.pk} [data-testid=anomaly-status]").inner_text() == "Acknowledged"
    assert Anomaly.objects.get(pk=anomaly.pk).status == "acknowledged"

    # The status filter re-renders only the table and keeps the filter in the URL.
    page.select_option("#anomaly-status", "acknowledged")
    page.wait_for_url("**/insights/?status=acknowledged*")
    page.wait_for_selector(f"#anomaly-{anomaly.pk}")
    assert page.locator("#anomalies-section tbody tr").count() == 1


def test_analyst_sees_insights_without_buttons_and_no_settings(browser_page, live_server, org, usage):
    page = browser_page
    analyst = make_member(org, Role.ANALYST)
    browser_login(page, live_server, analyst)
    page.goto(f"{live_server.url}/insights/")
    assert page.locator("#anomalies-section tbody tr").count() >= 1
    assert page.locator("[data-action]").count() == 0
    assert page.locator("a.nav-item", has_text="Settings").count() == 0


def test_forecast_picker_swaps_the_chart(browser_page, live_server, admin_user, usage):
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/insights/")
    page.select_option("#forecast-feature", str(usage[1].pk))
    canvas = f"canvas[data-chart=forecast-spec-{usage[1].pk}]"
    page.wait_for_selector(canvas)
    wait_until(page, f"() => window.Chart && Chart.getChart(document.querySelector('{canvas}'))")


def test_api_key_shown_once_and_its_curl_works(browser_page, live_server, admin_user, org):
    page = browser_page
    accept_dialogs(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/settings/api-keys/")
    assert page.locator("text=No API keys yet").is_visible()
    page.fill("input[name=name]", "Web app")
    page.click("[data-testid=key-form] button[type=submit]")
    key_box = page.locator("[data-testid=new-key-value]")
    key_box.wait_for()
    raw_key = key_box.inner_text().strip()
    assert raw_key.startswith("upk_") and len(raw_key) == 36
    assert page.url.endswith("/settings/api-keys/")

    page.click("[data-copy='#new-key-value']")
    assert page.evaluate("navigator.clipboard.readText()") == raw_key

    command = page.locator("[data-testid=new-key-curl]").inner_text()
    assert raw_key in command and f"{live_server.url}/api/v1/events/track" in command
    screenshot(page, "settings-api-keys")

    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert '"uuid"' in result.stdout, result.stdout
    event = UsageEvent.objects.get(organization=org)
    assert event.feature.key == "getting-started"
    assert event.end_user.external_id == "first-user"

    # Shown once: a reload lists the key by prefix only, now marked as used.
    page.reload()
    assert raw_key not in page.content()
    row = page.locator("[data-testid=keys-table] tbody tr").first
    assert raw_key[:12] in row.inner_text()
    assert "never" not in row.inner_text()

    row.locator("button", has_text="Revoke").click()
    page.wait_for_selector("text=revoked; it can no longer send events")
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert '"detail"' in result.stdout and UsageEvent.objects.filter(organization=org).count() == 1


def test_invitation_flow(browser_page, live_server, admin_user, org):
    page = browser_page
    accept_dialogs(page)
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/settings/members/")
    page.fill("[data-testid=invite-form] input[name=email]", "new.analyst@acme.example")
    page.select_option("[data-testid=invite-form] select[name=role]", "analyst")
    page.click("[data-testid=invite-form] button[type=submit]")
    link = page.locator("[data-testid=invite-link]")
    link.wait_for()
    accept_url = link.input_value()
    assert accept_url.startswith(f"{live_server.url}/invite/")
    assert "Pending" in page.locator("[data-testid=invitations-table]").inner_text()

    # A second admin action in place: the last-admin guard message.
    page.select_option(f"#role-{admin_user.pk}", "member")
    page.click(f"#member-{admin_user.pk} button:has-text('Change')")
    page.wait_for_selector("[data-testid=members-error]")
    assert "last admin" in page.locator("[data-testid=members-error]").inner_text()
    screenshot(page, "settings-members")

    page.click("[data-testid=logout]")
    page.wait_for_url("**/login/**")
    page.wait_for_load_state("networkidle")  # let the login page finish (favicon) before leaving
    page.goto(accept_url)
    summary = page.locator("[data-testid=invitation-summary]").inner_text()
    assert org.name in summary and "new.analyst@acme.example" in summary and "analyst" in summary
    page.fill("input[name=full_name]", "Nadia Analyst")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=password_confirm]", PASSWORD)
    screenshot(page, "invitation-accept")
    page.click("[data-testid=accept-form] button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.wait_for_load_state("networkidle")
    assert "new.analyst@acme.example" in page.locator(".account-email").inner_text()
    user = User.objects.get(email="new.analyst@acme.example")
    assert (user.organization_id, user.role) == (org.pk, Role.ANALYST)

    # The link works once: opened again, it says so and shows no form.
    page.click("[data-testid=logout]")
    page.wait_for_url("**/login/**")
    page.wait_for_load_state("networkidle")
    # (Fetched, not opened: Chromium logs any 4xx document as a console error, which this page
    # fixture counts as a failure.)
    again = page.request.get(accept_url)
    assert again.status == 410 and "already been used" in again.text()
    assert 'data-testid="accept-form"' not in again.text()


def test_settings_organisation_and_webhooks(browser_page, live_server, admin_user, org, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    page = browser_page
    accept_dialogs(page)
    make_member(org, Role.ANALYST, email="ana@acme.example")
    tenant_services.invitation_create(org=org, email="pending@acme.example", role="member", invited_by=admin_user)
    browser_login(page, live_server, admin_user)

    page.goto(f"{live_server.url}/settings/")
    page.fill("input[name=alert_threshold]", "-1")
    page.evaluate("document.querySelector('[data-testid=org-form]').noValidate = true")
    page.click("[data-testid=org-form] button[type=submit]")
    page.wait_for_selector("[data-field=alert_threshold]")
    page.fill("input[name=name]", "Acme Analytics")
    page.fill("input[name=alert_threshold]", "4.5")
    page.click("[data-testid=org-form] button[type=submit]")
    page.wait_for_selector("text=Organisation settings saved.")
    assert page.locator(".org-name").inner_text() == "Acme Analytics"
    screenshot(page, "settings-organization")

    page.goto(f"{live_server.url}/settings/webhooks/")
    page.fill("[data-testid=webhook-form] input[name=url]", "http://127.0.0.1:8799/hooks/usage")
    page.check("[data-testid=webhook-form] input[value='export.daily']")
    page.click("[data-testid=webhook-form] button[type=submit]")
    secret = page.locator("[data-testid=new-webhook-secret]")
    secret.wait_for()
    assert secret.inner_text().startswith("whsec_")
    webhook = insight_webhooks.webhook_list(org).get()
    assert sorted(webhook.events) == ["anomaly.created", "export.daily"]
    WebhookDelivery.objects.create(
        webhook=webhook, event="anomaly.created", status_code=200, delivered_at=webhook.created_at
    )
    WebhookDelivery.objects.create(
        webhook=webhook, event="export.daily", status_code=503, error="HTTP 503", attempt=2,
        next_attempt_at=webhook.created_at + timedelta(minutes=1),
    )  # fmt: skip
    page.reload()
    assert secret.count() == 0
    assert "HTTP 503" in page.locator("[data-testid=webhook]").inner_text()
    screenshot(page, "settings-webhooks")

    page.click("[data-testid=webhook] button:has-text('Pause')")
    page.wait_for_selector("text=is now paused")
    webhook.refresh_from_db()
    assert webhook.active is False
    page.click("[data-testid=webhook] button:has-text('Delete')")
    page.wait_for_selector("text=No webhooks yet")
    assert not insight_webhooks.webhook_list(org).exists()


def test_analyst_gets_403_page_on_settings(page, live_server, org):
    # Plain `page`, not `browser_page`: Chromium logs the expected 403 as a console error.
    analyst = make_member(org, Role.ANALYST)
    browser_login(page, live_server, analyst)
    response = page.goto(f"{live_server.url}/settings/api-keys/")
    assert response.status == 403
    assert "admin" in page.locator("body").inner_text()


def test_new_organisation_sees_empty_states(browser_page, live_server, admin_user):
    page = browser_page
    browser_login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/insights/")
    page.wait_for_load_state("networkidle")
    for text in ("No anomalies yet", "Not enough data for a forecast yet", "No usage was recorded"):
        assert page.locator(f"text={text}").first.is_visible()
    assert page.locator("canvas").count() == 0
    screenshot(page, "insights-empty")
    page.click("text=create one in Settings")
    page.wait_for_url("**/settings/api-keys/")
    assert page.locator("text=No API keys yet").is_visible()
