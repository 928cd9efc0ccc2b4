"""The Accounts and Account pages through Django's test client, on the hand-counted accounts
of test_accounts (acme at risk at exactly -30 %)."""

import re
from datetime import date

import pytest
from django.core.cache import cache

from core.testing import page_client

from .test_accounts import accounts  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db

END = "end=2025-03-28"


@pytest.fixture
def analyst(analyst_user):
    return page_client(analyst_user)


def _names(html):
    return re.findall(r'href="/accounts/[^"]+/">([^<]+)</a>', html)


def test_accounts_page_lists_flags_sorts_and_filters(analyst, accounts):  # noqa: F811
    html = analyst.get(f"/accounts/?{END}").content.decode()
    assert _names(html) == ["Hooli Inc", "Globex Inc", "Acme Inc", "Initech Inc", "Umbrella Inc"]
    assert html.count('data-testid="at-risk"') == 1 and 'href="/accounts/">Accounts</a>' in html
    assert _names(analyst.get(f"/accounts/?{END}&at_risk=true").content.decode()) == ["Acme Inc"]
    assert _names(analyst.get(f"/accounts/?{END}&sort=name").content.decode())[0] == "Acme Inc"
    by_feature = analyst.get(f"/accounts/?{END}&feature=export").content.decode()
    assert _names(by_feature) == ["Globex Inc", "Acme Inc"] and 'data-testid="accounts-feature"' in by_feature
    assert re.findall(r'data-testid="feature-events">([^<]*)<', by_feature) == ["12", "3"]
    assert 'data-testid="feature-events"' not in html
    paged = analyst.get(f"/accounts/?{END}&page_size=2&page=2").content.decode()
    assert _names(paged) == ["Acme Inc", "Initech Inc"] and "page 2 of 3" in paged
    # Links start with their first parameter, not "?&" (the filters given, if any, lead).
    assert "?&amp;" not in html and "?&amp;" not in paged and 'href="?sort=name"' in html
    assert 'href="?feature=export&amp;sort=name"' in by_feature


def test_accounts_csv_holds_every_account_of_the_view_in_its_order(analyst, accounts):  # noqa: F811
    # `?format=csv` answered the HTML page, while Features and Users give a file.
    html = analyst.get(f"/accounts/?{END}&page_size=2&sort=name").content.decode()
    assert 'data-testid="csv-download"' in html and "sort=name&amp;format=csv" in html
    response = analyst.get(f"/accounts/?{END}&page_size=2&sort=name&format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="accounts.csv"'
    lines = response.content.decode().splitlines()
    assert lines[0] == (
        "account_id,name,active_users,events,previous_events,features_used,trend_pct,at_risk,last_seen,feature_events"
    )
    assert [line.split(",")[1] for line in lines[1:]] == [
        "Acme Inc",
        "Globex Inc",
        "Hooli Inc",
        "Initech Inc",
        "Umbrella Inc",
    ]
    at_risk = analyst.get(f"/accounts/?{END}&at_risk=true&format=csv").content.decode().splitlines()
    assert len(at_risk) == 2 and at_risk[1].split(",")[1] == "Acme Inc"
    refused = analyst.get("/accounts/?sort=bogus&format=csv")
    assert refused.status_code == 400 and "No file was made" in refused.content.decode()


def test_accounts_page_bad_filter_is_400_with_message(analyst, accounts):  # noqa: F811
    response = analyst.get("/accounts/?sort=bogus")
    assert response.status_code == 400 and "Choose one of" in response.content.decode()


def test_accounts_page_empty_state(analyst, org):
    response = analyst.get("/accounts/")
    assert response.status_code == 200 and "No accounts yet" in response.content.decode()
    assert "No account matches" in analyst.get("/accounts/?search=zzz").content.decode()


def test_account_page(analyst, accounts):  # noqa: F811
    html = analyst.get(f"/accounts/acme/?{END}").content.decode()
    assert 'data-testid="at-risk"' in html
    assert re.search(r'data-testid="account-events">7<', html)
    assert re.search(r'data-testid="account-trend"><span class="change change-down">-30\.0%<', html)
    assert 'href="/users/a1/"' in html and 'href="/users/a2/"' in html
    assert re.search(r'data-testid="account-not-adopted">.*Billing', html, re.S)
    assert 'id="chart-account-weekly"' in html


def test_account_page_of_another_organisation_is_404(analyst, accounts, other_org):  # noqa: F811
    from telemetry.models import Account

    Account.objects.create(organization=other_org, external_id="foreign")
    assert analyst.get("/accounts/foreign/").status_code == 404
    assert analyst.get("/accounts/nobody/").status_code == 404


def test_member_cannot_open_accounts(member_user, accounts):  # noqa: F811
    client = page_client(member_user)
    assert client.get("/accounts/").status_code in (302, 403, 404)


@pytest.mark.parametrize("url, count", [(f"/accounts/?{END}", 7), (f"/accounts/acme/?{END}", 10)])
def test_account_pages_query_counts(analyst, accounts, django_assert_num_queries, url, count):  # noqa: F811
    analyst.get(url)
    cache.clear()  # cold: session, user, organisation, then the account queries
    with django_assert_num_queries(count):
        assert analyst.get(url).status_code == 200


def test_account_page_shows_the_busiest_people_and_links_to_the_rest(analyst, org):
    """A large account renders its PEOPLE_SHOWN busiest people, not thousands of rows (that
    cost every request ~0.3 s at 1,200 users), and links the Users page for the rest."""
    from analytics import rollup
    from analytics.views_pages.accounts import PEOPLE_SHOWN
    from telemetry.models import Account

    from .factories import end_user, feature
    from .test_accounts import RECENT_DAY, _events

    search = feature(org, "search")
    big = Account.objects.create(organization=org, external_id="big", name="Big")
    for i in range(PEOPLE_SHOWN + 3):
        _events(org, search, end_user(org, f"u{i:03d}", account=big), RECENT_DAY, 1 + i)
    rollup.rollup_day(date.fromisoformat(RECENT_DAY), org)
    html = analyst.get(f"/accounts/big/?{END}").content.decode()
    rows = re.findall(r'href="/users/(u\d+)/"', html)
    # Most events first: the last users made (most events) lead; 3 are left to the Users page.
    assert len(rows) == PEOPLE_SHOWN and rows[0] == f"u{PEOPLE_SHOWN + 2:03d}"
    assert re.search(r'data-testid="account-users-more">and 3 more', html)
    assert 'href="/users/?account=big&amp;days=30"' in html


def test_account_page_shows_the_most_used_features_and_links_to_the_rest(analyst, org):
    """An account using hundreds of features shows FEATURES_SHOWN of them (a page 17,867 px
    tall listed 411) and links the Features page filtered to the account for the rest."""
    from analytics import rollup
    from analytics.views_pages.accounts import FEATURES_SHOWN
    from telemetry.models import Account

    from .factories import end_user, feature
    from .test_accounts import RECENT_DAY, _events

    big = Account.objects.create(organization=org, external_id="big", name="Big")
    person = end_user(org, "u1", account=big)
    for i in range(FEATURES_SHOWN + 4):
        _events(org, feature(org, f"f{i:02d}"), person, RECENT_DAY, 1 + i)
    rollup.rollup_day(date.fromisoformat(RECENT_DAY), org)
    html = analyst.get(f"/accounts/big/?{END}").content.decode()
    table = html.split('data-testid="account-features"')[1].split("</table>")[0]
    names = re.findall(r'href="/features/\d+/">([^<]+)</a>', table)
    # Most events first: the last features made lead.
    assert len(names) == FEATURES_SHOWN and names[0].lower() == f"f{FEATURES_SHOWN + 3:02d}"
    assert re.search(r'data-testid="account-features-more">and 4 more', html)
    assert 'href="/features/?account=big&amp;start=2025-03-01&amp;end=2025-03-28"' in html


def test_account_weekly_chart_marks_the_window_holding_today(analyst, accounts):  # noqa: F811
    from unittest import mock

    from analytics.views_pages import accounts as account_pages

    from .test_pages import _chart_spec

    closed = analyst.get(f"/accounts/acme/?{END}").content.decode()
    assert _chart_spec(closed, "chart-account-weekly")["partial_from"] is None
    assert "paler: today is in it" not in closed
    with mock.patch.object(account_pages, "today", return_value=date(2025, 3, 28)):
        html = analyst.get(f"/accounts/acme/?{END}").content.decode()
    current = _chart_spec(html, "chart-account-weekly")
    assert current["partial_from"] == len(current["labels"]) - 1
    assert "the last ending 28 Mar; paler: today is in it" in html
