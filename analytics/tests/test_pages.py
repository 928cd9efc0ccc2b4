"""The analytics pages and sign-in through Django's test client: roles (anonymous → login,
member → 403 page or only their own activity), foreign ids → 404 page, htmx fragments,
bad input → 400 with the message (never 500), no-store caching, empty states, and pinned
query counts."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.tests.pages_data import usage_make
from conftest import PASSWORD, client_for, make_member
from core.days import today
from core.testing import page_client
from telemetry.models import EndUser, Feature
from tenants.models import Role, User

from .conftest import shared_admin_fixture, shared_organisation

ANALYST_PAGES = ["analytics:dashboard", "analytics:features", "analytics:retention", "analytics:funnels"]


@pytest.fixture(scope="module")
def shared_usage(django_db_setup, django_db_blocker):
    """An organisation, its admin and a member, with 45 days of usage (`usage_make`) built and
    rolled up once for the module's tests that read it (`usage`): each built its own at 4-6 s
    a test on PostgreSQL. Their changes roll back with their test's transaction."""

    def build(admin):
        member = make_member(admin.organization, Role.MEMBER)
        usage_make(admin.organization, member=member)
        return member

    with shared_organisation(django_db_blocker, build) as shared:
        yield shared


admin_user = shared_admin_fixture("usage", "shared_usage")


@pytest.fixture
def member_user(request, org):
    if "usage" in request.fixturenames:
        return request.getfixturevalue("shared_usage")[1]
    return make_member(org, Role.MEMBER)


@pytest.fixture
def usage(org, shared_usage):
    assert org == shared_usage[0].organization
    return org


@pytest.fixture
def analyst(analyst_user):
    return page_client(analyst_user)


@pytest.fixture
def member(member_user):
    return page_client(member_user)


def feature_of(org, key="search"):
    return Feature.objects.get(organization=org, key=key)


# --- sign-in ----------------------------------------------------------------------------------


def test_login_page_and_form(db, admin_user):
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html and 'name="password"' in html and 'type="submit"' in html
    assert "no-store" in page["Cache-Control"]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    bad = client.post("/login/", {"username": admin_user.email, "password": "wrong", "csrfmiddlewaretoken": token})
    assert bad.status_code == 200
    assert "Please enter a correct" in bad.content.decode()
    ok = client.post(
        "/login/?next=/features/",
        {
            "username": admin_user.email.upper(),
            "password": PASSWORD,
            "csrfmiddlewaretoken": token,
            "next": "/features/",
        },
    )
    assert ok.status_code == 302 and ok["Location"] == "/features/"
    assert int(client.session[SESSION_KEY]) == admin_user.pk


def test_login_needs_csrf(db, admin_user):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/login/", {"username": admin_user.email, "password": PASSWORD})
    assert response.status_code == 403


def test_logout_is_post_only(admin_user):
    client = page_client(admin_user)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/").status_code == 302


def test_logged_in_user_skips_login_page(admin_user):
    response = page_client(admin_user).get("/login/")
    assert response.status_code == 302 and response["Location"] == "/"


# --- access -----------------------------------------------------------------------------------


PAGE_PATHS = ["/", "/features/", "/features/1/", "/users/", "/users/x/", "/retention/", "/funnels/"]


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_anonymous_is_sent_to_login(db, path):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


def test_expired_session_during_htmx_loads_the_login_page(db):
    response = Client().get("/features/?sort=name", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/features/%3Fsort%3Dname"


@pytest.mark.parametrize("name", ["analytics:features", "analytics:retention", "analytics:funnels"])
def test_member_gets_403_page_on_analytics_pages(member, name):
    response = member.get(reverse(name))
    assert response.status_code == 403
    assert "errors/403.html" in [t.name for t in response.templates]
    assert "analyst or admin role" in response.content.decode()
    # The site's icon, so the browser does not ask for a /favicon.ico that is not there.
    assert 'rel="icon" href="/static/img/favicon.svg"' in response.content.decode()


def test_member_feature_detail_is_403(member, usage):
    assert member.get(reverse("analytics:feature-detail", args=[feature_of(usage).pk])).status_code == 403


def test_member_dashboard_redirects_to_own_activity(member):
    response = member.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("analytics:users")


def test_member_sees_only_own_activity(member, member_user, usage):
    response = member.get(reverse("analytics:users"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "My activity" in html
    assert member_user.email in html
    assert "user-001" not in html
    assert member.get(reverse("analytics:user-detail", args=[member_user.email])).status_code == 200
    other = member.get(reverse("analytics:user-detail", args=["user-001"]))
    assert other.status_code == 404
    assert "errors/404.html" in [t.name for t in other.templates]


def test_staff_without_organisation_gets_403(db):
    staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
    assert page_client(staff).get("/").status_code == 403


def test_foreign_ids_are_404_pages(analyst, other_org):
    usage_make(other_org, days=5, users=3)
    foreign_feature = Feature.objects.filter(organization=other_org).first()
    foreign_user = EndUser.objects.filter(organization=other_org).first()
    for url in (
        reverse("analytics:feature-detail", args=[foreign_feature.pk]),
        reverse("analytics:user-detail", args=[foreign_user.external_id]),
        reverse("analytics:feature-detail", args=[999999]),
    ):
        response = analyst.get(url)
        assert response.status_code == 404, url
        assert "errors/404.html" in [t.name for t in response.templates]


# --- pages ------------------------------------------------------------------------------------


def test_every_page_renders_with_data_and_is_no_store(analyst, usage):
    feature = feature_of(usage)
    urls = [reverse(name) for name in ANALYST_PAGES] + [
        reverse("analytics:feature-detail", args=[feature.pk]),
        reverse("analytics:users"),
        reverse("analytics:user-detail", args=["user-001"]),
        reverse("analytics:funnels") + "?step=search&step=export&window_days=7",
    ]
    for url in urls:
        response = analyst.get(url)
        assert response.status_code == 200, url
        assert "no-store" in response["Cache-Control"], url
        html = response.content.decode()
        assert "<!doctype html>" in html and 'class="sidebar"' in html, url
        assert "Traceback" not in html


def test_dashboard_kpis_equal_the_api(analyst, analyst_user, usage):
    html = analyst.get("/").content.decode()
    api = client_for(analyst_user).get("/api/v1/analytics/usage-summary").json()
    for key in ("total_events", "active_users", "features_tracked", "sessions", "avg_session_duration"):
        shown = re.search(rf'data-testid="kpi-{key}" data-value="([^"]+)"', html).group(1)
        assert float(shown) == pytest.approx(api[key]["value"]), key
    assert api["total_events"]["value"] > 0


def test_dashboard_htmx_returns_the_fragment_only(analyst, usage):
    response = analyst.get("/?gender=F", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'data-testid="kpis"' in html
    assert 'id="chart-events"' in html  # the chart data travels with the fragment
    # A history restore needs the whole page.
    restore = analyst.get("/", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<!doctype html>" in restore.content.decode()


def test_dashboard_filters(analyst, usage):
    feature = feature_of(usage)
    for query in (f"?feature={feature.key}", f"?feature={feature.pk}", "?age=18-40", "?gender=F", "?start=2025-01-01"):
        response = analyst.get("/" + query)
        assert response.status_code == 200, query
    assert f'value="{feature.key}"' in analyst.get(f"/?feature={feature.pk}").content.decode()


@pytest.mark.parametrize(
    "query, message",
    [
        ("?start=yesterday", "valid date"),
        ("?start=2025-02-01&end=2025-01-01", "on or before"),
        ("?feature=no-such-feature", "Unknown feature"),
        ("?age=7-9", "Choose one of"),
    ],
)
def test_dashboard_bad_input_is_a_400_with_the_message(analyst, usage, query, message):
    response = analyst.get("/" + query)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize(
    "url, status",
    [
        ("/features/?start=x", 400),
        ("/features/?sort=bogus", 400),
        ("/features/?page=zz", 400),
        ("/features/?page=0", 400),
        ("/users/?page=0", 400),
        ("/users/?sort=nope", 400),
        ("/users/?days=abc", 400),
        ("/retention/?weeks=1000", 400),
        ("/funnels/?step=search", 400),
        ("/funnels/?steps=" + ",".join(["search"] * 11), 400),
        ("/funnels/?step=search&step=export&window_days=-1", 400),
        ("/features/{feature}/?end=nope", 400),
    ],
)
def test_bad_input_elsewhere(analyst, usage, url, status):
    response = analyst.get(url.format(feature=feature_of(usage).pk))
    assert response.status_code == status


def test_new_organisation_sees_how_to_send_a_first_event(admin_user):
    client = page_client(admin_user)
    for url in ("/", "/features/", "/retention/", "/funnels/"):
        html = client.get(url).content.decode()
        assert "/api/v1/events/track" in html, url
        assert "Authorization: Bearer" in html, url
    assert "/settings/api-keys/" in client.get("/").content.decode()
    assert "No active users" in client.get("/users/").content.decode()


def test_features_table_sorts(analyst, usage):
    by_events = analyst.get("/features/").content.decode()
    by_name = analyst.get("/features/?sort=name").content.decode()

    def order(html):
        return re.findall(r'href="/features/\d+/">([^<]+)</a>', html)

    assert len(order(by_name)) == 4
    assert order(by_name) == sorted(order(by_name), key=str.lower)
    assert order(by_events)[0] == "search"  # the heaviest feature in pages_data
    assert '<svg class="sparkline"' in by_events


def test_user_search_narrows_and_paginates(analyst, usage):
    from telemetry.models import Feature

    Feature.objects.filter(organization=usage, key="search").update(name="Search box")
    everyone = analyst.get("/users/?page_size=5").content.decode()
    assert everyone.count('data-testid="user-row"') == 5
    # The top feature by its name, its key on hover (the API answers the key).
    assert '<span title="search">Search box</span>' in everyone
    assert 'data-testid="next-page"' in everyone
    one = analyst.get("/users/?search=user-003", headers={"HX-Request": "true"}).content.decode()
    assert one.count('data-testid="user-row"') == 1 and "<html" not in one
    none = analyst.get("/users/?search=nobody-at-all").content.decode()
    assert "No user matches" in none


def test_users_table_sorts(analyst, usage):
    html = analyst.get("/users/?sort=user_id").content.decode()
    ids = re.findall(r'class="mono">([^<]+)</a>', html)
    assert ids == sorted(ids)
    assert 'data-testid="user-sort-user_id">User ↑' in html
    assert 'sort=-user_id" class="sorted"' in html  # a second click flips it
    assert 'sort=-events"' in html  # numbers start high-to-low
    assert '<input type="hidden" name="sort" value="user_id" form="users-search">' in html


def test_user_detail_with_an_external_id_holding_a_slash(analyst, org):
    from telemetry.services.ingest import events_ingest

    assert events_ingest(org, [{"feature": "search", "user_id": "team/42 ä"}]).accepted == 1
    url = reverse("analytics:user-detail", args=["team/42 ä"])
    assert url == "/users/team/42%20%C3%A4/"
    response = analyst.get(url)
    assert response.status_code == 200
    assert "team/42 ä" in response.content.decode()


def test_user_detail_timeline(analyst, usage):
    html = analyst.get(reverse("analytics:user-detail", args=["user-001"])).content.decode()
    assert 'data-testid="timeline"' in html
    assert "s-1-" in html  # session ids group the timeline


def test_user_timeline_lines_are_escaped_and_labelled(analyst, org):
    """The timeline's HTML is built in Python (analytics/views_pages/users.py): names and
    types escaped, times in UTC, the event type shown unless it is the default, session time
    rounded, a long session id cut as `truncatechars:18` cuts it, one event in a session of
    its own without "until"."""
    from datetime import UTC, datetime

    from analytics.tests.factories import end_user, event, feature

    f, user = feature(org, "x", name="<b>Export & share</b>"), end_user(org, "esc")
    long_id = "session-" + "9" * 30
    event(org, f, user, datetime(2026, 3, 2, 23, 59, 30, tzinfo=UTC), session=long_id, duration=12.4)
    event(org, f, user, datetime(2026, 3, 3, 0, 5, tzinfo=UTC), session=long_id, event_type='"><script>')
    event(org, f, user, datetime(2026, 3, 4, 8, 0, tzinfo=UTC))
    html = analyst.get("/users/esc/").content.decode()
    timeline = html[html.index('data-testid="timeline"') : html.index("</ol>")]
    assert "<script>" not in timeline and "<b>" not in timeline
    assert timeline.count("<span>&lt;b&gt;Export &amp; share&lt;/b&gt;</span>") == 3
    assert '<span class="badge">&quot;&gt;&lt;script&gt;</span>' in timeline
    assert timeline.count('class="badge"') == 1  # "interaction" is not badged
    assert '<time datetime="2026-03-02T23:59:30+00:00">23:59:30</time>' in timeline
    assert '<span class="muted">12 s</span>' in timeline
    assert '<strong>Wed 4 Mar 2026, 08:00</strong> <span class="muted small">1 event</span>' in timeline
    assert "<strong>Mon 2 Mar 2026, 23:59</strong>" in timeline
    assert '2 events · session <span class="mono">session-999999999…</span> · until 00:05' in timeline
    assert long_id not in timeline


def test_user_timeline_says_how_many_and_loads_older_events(analyst, org, django_assert_num_queries):
    from django.utils import timezone

    from analytics.tests.factories import end_user, event, feature

    f, user, now = feature(org, "app"), end_user(org, "busy"), timezone.now()
    for i in range(230):
        event(org, f, user, now - timedelta(minutes=i), session=f"s{i // 60}")
    html = analyst.get("/users/busy/").content.decode()
    count = re.search(r'data-testid="timeline-count">([^<]*)<', html).group(1)
    assert "230 events in 4 sessions" in count and "200 at a time" in count
    assert html.count('class="session"') == 4  # 200 events: s0…s2 and the newest 20 of s3
    assert 'data-testid="timeline-older"' in html
    before = re.search(r'hx-get="\?before=([0-9a-f-]+)"', html).group(1)

    # htmx: only the next sessions (the cut one goes on), no page around them, no further link.
    with django_assert_num_queries(6):  # session, user, org; the end user, the cursor, the page
        fragment = analyst.get(f"/users/busy/?before={before}", headers={"HX-Request": "true"})
    text = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in text
    assert text.count('class="session session-continued"') == 1 and "· continued" in text
    assert 'data-testid="timeline-older"' not in text and text.count("<time ") == 30

    # Without JavaScript the link opens the older page whole, with a way back to the newest.
    page = analyst.get(f"/users/busy/?before={before}").content.decode()
    assert 'data-testid="timeline-newest"' in page and page.count("<time ") == 30
    bad = analyst.get("/users/busy/?before=nope")
    assert bad.status_code == 400 and "before" in bad.content.decode()
    bad_fragment = analyst.get("/users/busy/?before=nope", headers={"HX-Request": "true"})
    assert bad_fragment.status_code == 400 and "<html" not in bad_fragment.content.decode()
    # The page names its own link, not the API's field the page does not show.
    for refused in (bad, bad_fragment):
        text = refused.content.decode()
        assert "Older events" in text and "timeline_next" not in text


def test_feature_detail_embeds_the_forecast(analyst, usage):
    html = analyst.get(reverse("analytics:feature-detail", args=[feature_of(usage).pk])).content.decode()
    assert 'id="chart-feature-usage"' in html
    assert f'hx-get="/insights/forecast/{feature_of(usage).pk}/' in html


def test_funnel_result(analyst, usage):
    html = analyst.get("/funnels/?step=search&step=export&step=share&window_days=14").content.decode()
    assert html.count('class="funnel-step"') == 3
    users = [int(n.replace(",", "")) for n in re.findall(r'data-testid="funnel-users">([\d,]+)<', html)]
    assert users == sorted(users, reverse=True) and users[0] > 0
    fragment = analyst.get("/funnels/?step=search", headers={"HX-Request": "true"})
    assert fragment.status_code == 400 and "Choose at least 2 steps." in fragment.content.decode()


def _old_event_type(org, event_type, days_ago=120):
    """An event of `event_type` sent by a new end user `days_ago` days ago, rolled up: a type
    the organisation knows, outside the pages' default range and its 8-week blocks."""
    from datetime import timedelta

    from django.utils import timezone

    from analytics import rollup
    from analytics.tests.factories import end_user, event

    when = timezone.now() - timedelta(days=days_ago)
    event(org, feature_of(org), end_user(org, f"sent-{event_type}", first_seen=when), when, event_type=event_type)
    rollup.rollup_day(when.date(), org)


def test_a_funnel_nobody_enters_shows_no_conversion(analyst, usage):
    """Its conversions are null (undefined), shown as "—", never "0.0%"."""
    _old_event_type(usage, "refund")
    html = analyst.get("/funnels/?step=refund&step=search").content.decode()
    metas = re.findall(r'<div class="funnel-meta">(.*?)</div>', html, re.S)
    assert len(metas) == 2 and all("users · —" in m for m in metas), metas
    assert "— from previous step" in metas[1] and "0.0%" not in html


def test_funnel_steps_name_features_by_key_id_or_name_and_nothing_else(analyst, usage):
    """A step naming no feature and no event type any end user sent is refused by name (it
    counted nobody, silently); a feature's name or id is taken as its key, as elsewhere."""
    refused = analyst.get("/funnels/?step=search&step=Search+feature").content.decode()
    errors = re.findall(r'data-testid="funnel-error">(.*?)</div>', refused, re.S)
    assert len(errors) == 1 and "Search feature" in errors[0] and "no event type" in errors[0]
    named = analyst.get(f"/funnels/?step=Search&step={feature_of(usage, 'export').pk}").content.decode()
    assert 'data-testid="funnel-error"' not in named
    assert re.findall(r'data-testid="funnel-users">([\d,]+)<', named)
    # An event type sent, but not in this range: zero, with a note that it matched nothing here.
    _old_event_type(usage, "refund")
    elsewhere = analyst.get("/funnels/?step=search&step=refund").content.decode()
    assert len(re.findall(r'data-testid="funnel-unmatched">', elsewhere)) == 1
    # A real event type no one reached after the first step counts zero, without the note.
    from django.utils import timezone

    from analytics import rollup
    from analytics.tests.factories import end_user, event

    now = timezone.now()
    event(usage, feature_of(usage), end_user(usage, "refunder", first_seen=now), now, event_type="refund")
    rollup.rollup_day(now.date(), usage)
    real = analyst.get("/funnels/?step=search&step=refund").content.decode()
    assert re.findall(r'data-testid="funnel-users">([\d,]+)<', real)[-1] == "0"
    assert 'data-testid="funnel-unmatched"' not in real


def _chart_spec(html, chart_id):
    import json

    found = re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_todays_partial_point_is_marked(analyst, usage):
    """A range ending today charts today's count, which is still filling up: the spec marks
    it (drawn dashed) and a note under the chart says so; a range ending yesterday has none."""
    from core.days import today

    html = analyst.get("/").content.decode()
    for chart_id in ("chart-events", "chart-active"):
        spec = _chart_spec(html, chart_id)
        assert spec["labels"][-1] == today().isoformat()
        assert spec["partial_from"] == len(spec["labels"]) - 1
    assert html.count('data-testid="partial-note"') == 2 and "today so far" in html
    feature_html = analyst.get(f"/features/{feature_of(usage).pk}/").content.decode()
    assert _chart_spec(feature_html, "chart-feature-usage")["partial_from"] is not None
    assert 'data-testid="partial-note"' in feature_html

    yesterday = today() - timedelta(days=1)
    closed = analyst.get(f"/?start={yesterday - timedelta(days=6)}&end={yesterday}").content.decode()
    assert _chart_spec(closed, "chart-events")["partial_from"] is None
    assert 'data-testid="partial-note"' not in closed


def test_a_last_week_cut_short_by_the_range_is_marked(analyst, usage):
    """Over a range charted by week that ends on a Wednesday in the past, the last week holds
    3 days: marked like today's point, with a note saying so, not read as a collapse."""
    from core.days import today

    end = today() - timedelta(days=14)
    end -= timedelta(days=(end.weekday() - 2) % 7)  # a Wednesday
    html = analyst.get(f"/?start={end - timedelta(days=180)}&end={end}").content.decode()
    spec = _chart_spec(html, "chart-events")
    assert spec["partial_from"] == len(spec["labels"]) - 1 and spec["partial_label"] == "3 of 7 days"
    assert f"the last week stops at {end.day} {end:%b} with the range: 3 of its 7 days." in html
    # Ending on a Sunday: every week whole.
    sunday = end + timedelta(days=4)
    whole = analyst.get(f"/?start={sunday - timedelta(days=180)}&end={sunday}").content.decode()
    assert _chart_spec(whole, "chart-events")["partial_from"] is None


def test_partial_from_by_day_and_by_week():
    from datetime import date
    from unittest import mock

    from analytics.views_pages import common

    with mock.patch.object(common, "today", return_value=date(2026, 11, 25)):  # a Wednesday
        days = [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
        assert common.partial_from(days, "day") == 2
        assert common.partial_from(days[:2], "day") is None
        # Weeks labelled Mon 11-09, Mon 11-16 and Mon 11-23 (the week holding today).
        weeks = [date(2026, 11, 12), date(2026, 11, 16), date(2026, 11, 23)]  # the first cut by start
        assert common.partial_from(weeks, "week") == 2
        assert common.partial_from(weeks[:2], "week") is None
        # A range ending on Wednesday 11-18 cuts its last week (of Monday 11-16) to 3 days.
        assert common.partial_from(weeks[:2], "week", date(2026, 11, 18)) == 1
        assert common.partial_from(weeks[:2], "week", date(2026, 11, 22)) is None
        assert common.partial_note("week", date(2026, 11, 18)) == (
            "the last week stops at 18 Nov with the range: 3 of its 7 days."
        )
        assert common.partial_note("week", date(2026, 11, 25)) == "this week so far, not complete yet."
        assert common.partial_spec(weeks[:2], "week", date(2026, 11, 18))["partial_label"] == "3 of 7 days"


def test_missing_durations_show_a_dash(analyst, org):
    """Events without a duration give no average session: the pages show "—", not "0.0 s"."""
    from django.utils import timezone

    from analytics import rollup
    from analytics.tests.factories import end_user, event, feature

    silent, now = feature(org, "silent"), timezone.now()
    event(org, silent, end_user(org, "quiet", first_seen=now), now)
    rollup.rollup_range(now.date() - timedelta(days=1), now.date(), org)
    pages = {
        "/features/": r">silent</div></td>\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>[^<]*</td>\s*<td[^>]*>([^<]*)</td>",
        "/users/": r"quiet.*?—",
        "/users/quiet/": r'data-testid="user-avg-session">([^<]*)<',
        "/": r'data-testid="kpi-avg_session_duration"[^>]*>([^<]*)<',
        f"/features/{silent.pk}/": r'data-testid="feature-avg-session"[^>]*>([^<]*)<',
    }
    for url, pattern in pages.items():
        html = analyst.get(url).content.decode()
        found = re.search(pattern, html, re.S)
        assert found, url
        assert "—" in found.group(found.lastindex or 0), (url, found.group(0)[-200:])
        assert "0.0<span" not in html and "0.0 s" not in html, url


def test_funnel_first_look_does_not_ask_for_steps_it_already_shows(analyst, usage):
    """The first visit fills in the three most used features: the prompt says so rather than
    asking for at least two features."""
    html = analyst.get("/funnels/").content.decode()
    assert len([v for v in re.findall(r'name="step" [^>]*value="([^"]*)"', html) if v]) == 3
    prompt = re.search(r'data-testid="funnel-prompt">(.*?)</p>', html, re.S).group(1)
    assert "3 steps are filled in" in prompt and "Choose at least" not in prompt


def test_retention_heat_map(analyst, usage):
    html = analyst.get("/retention/?weeks=8").content.decode()
    assert 'data-testid="retention-table"' in html
    assert "cell heat-10" in html  # week 0 of a cohort is 100 %


# --- query counts -----------------------------------------------------------------------------

# Session + user + organisation are 3 queries of every page; the rest is the query functions',
# a fixed number whatever the rows (measured cold, with an empty dashboard cache). Two of them
# list the saved segments and the accounts for the filter bar's pickers.
QUERY_BUDGET = {
    "/": 11,  # the summary's distinct users: one query over the per-user rollups
    "/features/": 8,  # stickiness: the distinct users per feature over the range
    "/users/": 11,  # the picker lists accounts; the page ranked (`queries.ranked`), its profiles, feature names
    "/retention/": 6,
    "/funnels/?step=search&step=export": 9,  # + the steps resolved
}


@pytest.mark.parametrize("url, budget", QUERY_BUDGET.items())
def test_query_counts_are_pinned(analyst, usage, django_assert_max_num_queries, url, budget):
    analyst.get(url)  # warm the session
    cache.clear()  # measure a cold page: every figure computed
    with django_assert_max_num_queries(budget):
        assert analyst.get(url).status_code == 200


def test_dashboard_figures_are_cached_until_the_next_rollup(analyst, usage, django_assert_max_num_queries):
    from analytics import rollup
    from core.days import today

    for query in ("", "?gender=F&feature=search"):
        analyst.get("/" + query)
        # session, user, organisation, the segment and account pickers; figures from the cache
        with django_assert_max_num_queries(6):
            analyst.get("/" + query)
    rollup.rollup_day(today(), usage)  # bumps the generation: the next view recomputes
    with CaptureQueriesContext(connection) as queries:
        analyst.get("/")
    assert len(queries) > 4


def test_dashboard_demographic_filters_reach_the_cards(analyst, analyst_user, usage):
    html = analyst.get("/?gender=F&age=18-40").content.decode()
    api = client_for(analyst_user).get("/api/v1/analytics/usage-summary?gender=F&age=18-40").json()
    shown = re.search(r'data-testid="kpi-total_events" data-value="([^"]+)"', html).group(1)
    assert int(shown) == api["total_events"]["value"]
    everyone = client_for(analyst_user).get("/api/v1/analytics/usage-summary").json()
    assert 0 < api["total_events"]["value"] < everyone["total_events"]["value"]


def test_detail_query_counts_do_not_grow_with_rows(analyst, usage, django_assert_max_num_queries):
    feature = feature_of(usage)
    with django_assert_max_num_queries(10):  # the segment and account pickers and stickiness included
        analyst.get(reverse("analytics:feature-detail", args=[feature.pk]))
    with django_assert_max_num_queries(8):
        analyst.get(reverse("analytics:user-detail", args=["user-001"]))


def test_member_detail_checks_ownership_in_one_query(member, member_user, usage, django_assert_max_num_queries):
    # session, user, organisation, the ownership check, then the detail's own four queries
    with django_assert_max_num_queries(8):
        assert member.get(reverse("analytics:user-detail", args=[member_user.email])).status_code == 200
    with django_assert_max_num_queries(4):
        assert member.get(reverse("analytics:user-detail", args=["user-001"])).status_code == 404


def test_member_in_another_org_cannot_see_this_orgs_users(other_org, usage):
    outsider = make_member(other_org, Role.ANALYST)
    response = page_client(outsider).get(reverse("analytics:user-detail", args=["user-001"]))
    assert response.status_code == 404


# Exact counts, cold (every figure computed): session, user and organisation are the first 3;
# every analytics page lists the saved segments and the accounts once for its filter bar.
EXACT_QUERIES = {
    "/": 11,  # the summary's distinct users: one query over the per-user rollups
    "/features/": 8,  # feature usage, sparklines, stickiness (distinct users per feature)
    "/features/{feature}/": 10,  # the feature, its events and active-user series, session totals, stickiness
    "/features/{feature}/?start={long_ago}": 10,  # by week: the same queries
    # Ranked by most events (`queries.ranked`): the weekly bounds (and the total), the
    # candidates' edge days, the page's figures, its profiles, its top features, their names.
    "/users/": 11,
    "/users/?page=2&page_size=5": 11,
    "/users/?page=99&page_size=5": 13,  # past the end: counted (no row: no figures), then the last page read
    "/users/user-001/": 7,
    "/retention/": 6,  # one statement
    "/funnels/?step=search&step=export": 9,  # + the steps resolved
}


@pytest.mark.parametrize("url, count", EXACT_QUERIES.items())
def test_query_counts_are_exact(analyst, usage, django_assert_num_queries, url, count):
    from core.days import today

    url = url.format(feature=feature_of(usage).pk, long_ago=today() - timedelta(days=200))
    analyst.get(url)  # warm the session
    cache.clear()
    with django_assert_num_queries(count):
        assert analyst.get(url).status_code == 200


def test_feature_detail_average_session_is_the_dashboards(analyst, analyst_user, usage):
    feature = feature_of(usage)
    html = analyst.get(reverse("analytics:feature-detail", args=[feature.pk])).content.decode()
    shown = float(re.search(r'data-testid="feature-avg-session" data-value="([^"]+)"', html).group(1))
    api = client_for(analyst_user).get(f"/api/v1/analytics/usage-summary?feature={feature.key}").json()
    assert shown == api["avg_session_duration"]["value"] > 0
    events = re.search(r'data-testid="feature-events">([^<]+)<', html).group(1)
    assert int(events.replace(",", "")) == api["total_events"]["value"]


def test_retention_page_weighs_cohorts_by_size(analyst, usage):
    from analytics import queries

    data = queries.retention(usage, weeks=12)
    averages = queries.retention_averages(data["cohorts"])
    html = analyst.get("/retention/").content.decode()
    shown = re.search(r'data-testid="avg-d1">([^<%]+)%', html).group(1)
    assert float(shown) == pytest.approx(averages["d1"], abs=0.05)
    assert f'<div class="kpi-value">{averages["users"]}</div>' in html


def test_features_table_pages(analyst, usage, monkeypatch):
    from analytics.views_pages import features as features_pages

    monkeypatch.setattr(features_pages, "FEATURES_PAGE_SIZE", 3)  # 4 features: two pages
    first = analyst.get("/features/").content.decode()
    assert "4 features · page 1 of 2" in first and "page=2" in first
    second = analyst.get("/features/?page=2").content.decode()
    assert "page 2 of 2" in second and len(re.findall(r'href="/features/\d+/"', second)) == 1
    # As on the users table: past the end is the last page; below 1 or not a number is
    # refused by name (a 400), and the first page is shown with the message.
    assert "page 2 of 2" in analyst.get("/features/?page=9").content.decode()
    for bad in ("0", "x"):
        refused = analyst.get(f"/features/?page={bad}")
        html = refused.content.decode()
        assert refused.status_code == 400 and "page 1 of 2" in html and "Shown without page." in html, bad


def test_users_table_past_the_last_page_shows_the_last_page(analyst, usage):
    html = analyst.get("/users/?page=99&page_size=5").content.decode()
    count = int(re.search(r'data-testid="users-count">(\d+) users', html).group(1))
    last = -(-count // 5)
    assert f"page {last} of {last}" in html
    assert html.count('data-testid="user-row"') == count - 5 * (last - 1)
    assert 'data-testid="prev-page"' in html and 'data-testid="next-page"' not in html


def test_tables_share_one_pager_that_keeps_the_query(analyst, usage, monkeypatch):
    # users, features and accounts include partials/pager.html: the count, and Previous/Next
    # links carrying the view's own query (search, range, sort, filters) besides the page.
    from analytics.views_pages import features as features_pages

    monkeypatch.setattr(features_pages, "FEATURES_PAGE_SIZE", 3)
    features = analyst.get("/features/?sort=name").content.decode()
    assert 'data-testid="features-count">4 features · page 1 of 2' in features
    assert re.search(r'href="\?start=[\d-]+&amp;end=[\d-]+&amp;sort=name&amp;page=2"', features)
    # A feature used before the range only: the count says how many were used in it (the
    # dashboard's "Features"), beside the ones listed (QA pass 3, F8).
    from analytics import rollup
    from analytics.tests.factories import at, event, feature
    from telemetry.models import Feature

    org = Feature.objects.first().organization
    before = today() - timedelta(days=40)  # in the previous period, for the trend
    event(org, feature(org, "retired"), None, at(before.isoformat(), "09:00:00"))
    rollup.rollup_range(before, before, org)
    both = analyst.get("/features/?sort=name&start=" + (today() - timedelta(days=29)).isoformat()).content.decode()
    assert 'data-testid="features-count">5 features (4 used in this range) · page 1 of 2' in both
    users = analyst.get("/users/?page_size=5&days=90&search=u&sort=events").content.decode()
    next_link = re.search(r'<a class="btn btn-small" href="([^"]+)"[^>]*data-testid="next-page"', users)
    assert next_link and next_link.group(1).startswith("?search=u&amp;days=90&amp;sort=events")
    assert next_link.group(1).endswith("&amp;page=2")


def test_an_empty_range_of_an_organisation_with_events_asks_for_another_range(analyst, usage):
    """It said "Send your first feature-usage event" with the curl line, to an organisation
    whose events were all outside the range picked."""
    for url in ("/features/?start=2001-01-01&end=2001-01-31", "/?start=2001-01-01&end=2001-01-31"):
        html = analyst.get(url).content.decode()
        assert 'data-testid="empty-range"' in html, url
        assert "curl -X POST" not in html and "Send your first" not in html
