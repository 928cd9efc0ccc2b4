"""The Content-Security-Policy holds in a real Chromium: every main page, the settings pages,
the invitation page, the error pages, the Django admin and Swagger UI load and draw without
one `securitypolicyviolation` (a blocked inline script or style, an event handler attribute,
a foreign or data: image…), and every response carries the policy and Permissions-Policy."""

import pytest

from analytics.tests.pages_data import usage_make
from conftest import PASSWORD, browser_login, make_member, wait_until
from insights.tests.helpers import features_make, rollups_make, yesterday
from telemetry.models import EndUser, Feature
from tenants import services as tenant_services
from tenants.models import Role, User

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Reports each violation to Python; added before any page script runs, on every navigation.
LISTEN = """
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolation([location.pathname, e.violatedDirective, e.blockedURI, e.sourceFile, e.lineNumber].join(" | "));
});
"""


@pytest.fixture
def violations(page):
    found = []
    page.expose_function("cspViolation", lambda report: found.append(report))
    page.add_init_script(LISTEN)
    return found


def _visit(page, url, wait_for=None):
    response = page.goto(url)
    page.wait_for_load_state("networkidle")
    if wait_for:
        wait_until(page, wait_for)
    headers = response.headers
    assert headers["content-security-policy"].startswith("default-src 'self'"), url
    assert "camera=()" in headers["permissions-policy"], url
    return response


def test_app_pages_load_without_a_csp_violation(browser_page, violations, live_server, admin_user, org):
    usage_make(org)
    features = features_make(org, 3, prefix="insight")
    rollups_make(org, features, end=yesterday(), days=45, with_org=False)
    feature = Feature.objects.filter(organization=org).first()
    end_user = EndUser.objects.filter(organization=org).first()
    page = browser_page
    _visit(page, f"{live_server.url}/login/")
    browser_login(page, live_server, admin_user)
    charts = "() => [...document.querySelectorAll('canvas[data-chart]')].every((c) => Chart.getChart(c))"
    for path, wait_for in [
        ("/", charts),
        ("/features/", None),
        (f"/features/{feature.pk}/", "() => document.querySelector('.forecast canvas')"),
        ("/users/", None),
        (f"/users/{end_user.external_id}/", None),
        ("/retention/", None),
        (f"/funnels/?steps={feature.key},{feature.key}", None),
        ("/insights/", charts),
        ("/settings/", None),
        ("/settings/members/", None),
        ("/settings/api-keys/", None),
        ("/settings/webhooks/", None),
        ("/settings/alert-rules/", None),
    ]:
        _visit(page, f"{live_server.url}{path}", wait_for)
    # An htmx swap (filters re-render fragments and their charts in place).
    page.goto(f"{live_server.url}/")
    page.click("[data-testid=preset-7]")
    wait_until(page, "location.search.includes('start=')")
    page.wait_for_load_state("networkidle")
    assert violations == []


def test_invitation_and_error_pages_without_a_csp_violation(page, violations, live_server, admin_user, org):
    _, token = tenant_services.invitation_create(org=org, email="new@acme.example", role=Role.ANALYST, invited_by=None)
    _visit(page, f"{live_server.url}/invite/{token}/")
    assert page.locator("input[name=password]").count() == 1
    assert _visit(page, f"{live_server.url}/no-such-page/").status == 404
    browser_login(page, live_server, make_member(org, Role.MEMBER))
    assert _visit(page, f"{live_server.url}/settings/api-keys/").status == 403
    assert violations == []


def test_admin_and_swagger_ui_without_a_csp_violation(browser_page, violations, live_server, org):
    staff = User.objects.create_superuser(email="staff-csp@usage-platform.example", password=PASSWORD)
    page = browser_page
    _visit(page, f"{live_server.url}/api/docs/", "() => document.querySelectorAll('.opblock').length > 10")
    # Open one operation: Swagger UI draws its parameters, schemas and icons.
    page.locator(".opblock-summary").first.click()
    page.wait_for_selector(".opblock-body")
    _visit(page, f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", staff.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")
    for path in ("/admin/", "/admin/telemetry/feature/", "/admin/telemetry/feature/add/", "/admin/tenants/user/"):
        _visit(page, f"{live_server.url}{path}")
    assert violations == []
