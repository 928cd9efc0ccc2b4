"""The Insights page and its endpoints through Django's test client: roles, empty states,
anomaly status changes that persist, foreign ids → 404 page, bad input → 4xx (never 500),
the forecast fragment the feature detail page embeds."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from conftest import make_member
from core.testing import page_client
from insights import queries, services, webhooks
from insights.models import Anomaly, Insight, Webhook, WebhookDelivery
from insights.tests.helpers import features_make, rollups_make, yesterday
from tenants.models import Role


@pytest.fixture
def usage(org):
    """70 days of weekday-seasonal rollups for five features, with a spike two days ago."""
    features = features_make(org, 5)
    spike_day = yesterday() - timedelta(days=1)
    rollups_make(org, features, end=yesterday(), days=70, spikes={(0, spike_day): 4.0})
    services.anomalies_detect(org)
    return features


@pytest.fixture
def anomaly(org, usage):
    return services.anomalies_list(org, detector="timeseries").first()


@pytest.fixture
def foreign_anomaly(other_org):
    features = features_make(other_org, 1, prefix="globex")
    return Anomaly.objects.create(
        organization=other_org, feature=features[0], date=yesterday(), detector="timeseries",
        metric="event_count", value=900, expected=100, score=12, severity="high",
    )  # fmt: skip


# --- Access --------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(db):
    response = Client().get(reverse("insights:index"))
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/insights/")


def test_member_gets_the_403_page(member_user):
    response = page_client(member_user).get(reverse("insights:index"))
    assert response.status_code == 403
    assert "analyst or admin role" in response.text and "<html" in response.text


def test_analyst_sees_the_page_without_admin_buttons(analyst_user, usage, anomaly):
    response = page_client(analyst_user).get(reverse("insights:index"))
    assert response.status_code == 200
    text = response.text
    assert 'class="nav-item active" href="/insights/"' in text
    assert 'data-testid="insight-source">Heuristic<' in text
    assert f'id="anomaly-{anomaly.pk}"' in text
    assert 'data-action="acknowledged"' not in text
    assert "Regenerate" not in text
    for chart in ("zscore-spec", "histogram-spec", f"forecast-spec-{usage[4].pk}"):
        assert f'<script id="{chart}" type="application/json">' in text


def test_admin_sees_status_buttons(admin_user, anomaly):
    text = page_client(admin_user).get(reverse("insights:index")).text
    assert 'data-action="acknowledged"' in text and 'data-action="resolved"' in text
    assert "Regenerate" in text


def test_chart_specs_carry_the_chart_data(analyst_user, org, usage):
    text = page_client(analyst_user).get(reverse("insights:index")).text
    zscores = json.loads(text.split('<script id="zscore-spec" type="application/json">')[1].split("</script>")[0])
    histogram = json.loads(text.split('<script id="histogram-spec" type="application/json">')[1].split("</script>")[0])
    data = services.chart_data(org, start=yesterday() - timedelta(days=29), end=yesterday())
    assert zscores["type"] == "hbar"
    assert zscores["labels"] == [f["feature_name"] for f in data["features"]]
    assert zscores["series"][0]["data"] == [f["z_scores"]["event_count"] for f in data["features"]]
    assert sum(histogram["series"][0]["data"]) == len(usage)


def test_gemini_source_and_model_are_shown(analyst_user, org, monkeypatch):
    insight = Insight(
        organization=org, period_start=yesterday() - timedelta(days=13), period_end=yesterday(),
        source="gemini", model="gemini-2.5-flash", bullets=["Usage grew 12 %."], summary="Usage grew 12 %.",
    )  # fmt: skip
    monkeypatch.setattr("insights.narrative.insight_current", lambda org, refresh=False: insight)
    text = page_client(analyst_user).get(reverse("insights:index")).text
    assert 'data-testid="insight-source">Gemini<' in text
    assert "gemini-2.5-flash" in text and "Usage grew 12 %." in text


def test_empty_organisation_sees_empty_states(admin_user):
    response = page_client(admin_user).get(reverse("insights:index"))
    assert response.status_code == 200
    text = response.text
    assert "No anomalies yet" in text
    assert "Not enough data for a forecast yet" in text
    assert "Not enough data yet" in text
    assert "No usage was recorded" in text
    assert 'data-chart="' not in text


def test_page_query_count_is_bounded(analyst_user, usage, django_assert_max_num_queries, django_assert_num_queries):
    client = page_client(analyst_user)
    with django_assert_max_num_queries(22):  # cold: chart data, forecast, narrative computed
        assert client.get(reverse("insights:index")).status_code == 200
    # warm: session, user, organisation, the open count the narrative is checked against,
    # the Unusual features ranking, anomaly count and page (the forecast's feature comes
    # from the cached chart summary)
    with django_assert_num_queries(7):
        response = client.get(reverse("insights:index"))
    assert response.status_code == 200
    assert f"<strong>{usage[4].name}</strong>: about" in response.text


@pytest.mark.parametrize("count", [1, 10])
def test_webhooks_page_query_count(admin_page, org, settings, django_assert_num_queries, count):
    """The same queries for 1 webhook as for 10, each shown with its 5 latest deliveries."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    hooks = [
        webhooks.webhook_create(org, url=f"http://127.0.0.1:9/{n}", events=["anomaly.created"]) for n in range(count)
    ]
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            webhook=hook, event="anomaly.created", status_code=500, error=f"err-{hook.pk}-{k}",
            created_at=now - timedelta(minutes=10 - k),
        )
        for hook in hooks
        for k in range(7)
    )  # fmt: skip
    # Session, user, organisation, the webhooks, and their latest deliveries in one query.
    with django_assert_num_queries(5):
        response = admin_page.get(reverse("webhook-settings:index"))
    assert response.status_code == 200
    assert response.text.count('data-testid="webhook"') == count
    for hook in hooks:
        shown = [k for k in range(7) if f'title="err-{hook.pk}-{k}"' in response.text]
        assert shown == [2, 3, 4, 5, 6]


# --- Anomaly filters and status ------------------------------------------------------------


def test_status_filter_and_htmx_partial(analyst_user, org, anomaly):
    services.anomaly_set_status(org, anomaly.pk, "resolved", user=None)
    client = page_client(analyst_user, **{"HX-Request": "true", "HX-Target": "anomalies-section"})
    response = client.get(reverse("insights:index"), {"status": "open"})
    assert response.status_code == 200
    assert '<aside class="sidebar">' not in response.text and 'id="anomalies-section"' in response.text
    assert f'id="anomaly-{anomaly.pk}"' not in response.text
    response = client.get(reverse("insights:index"), {"status": "resolved"})
    assert f'id="anomaly-{anomaly.pk}"' in response.text


def test_bad_filter_is_a_message(analyst_user, anomaly):
    response = page_client(analyst_user).get(reverse("insights:index"), {"status": "bogus", "start": "yesterday"})
    assert response.status_code == 200
    assert "Choose one of" in response.text or "valid date" in response.text
    assert f'id="anomaly-{anomaly.pk}"' in response.text  # unfiltered list instead


def test_admin_acknowledges_and_it_persists(admin_user, org, anomaly):
    client = page_client(admin_user, **{"HX-Request": "true"})
    url = reverse("insights:anomaly-status", args=[anomaly.pk])
    response = client.post(url, {"status": "acknowledged"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="anomaly-{anomaly.pk}"')
    assert 'data-status="acknowledged"' in response.text
    anomaly.refresh_from_db()
    assert anomaly.status == "acknowledged"
    assert anomaly.details["status_changed_by"] == admin_user.email
    page = page_client(admin_user).get(reverse("insights:index")).text
    assert f'id="anomaly-{anomaly.pk}" data-status="acknowledged"' in page


def _open_count_said(count):
    return f"{count} open anomal{'y' if count == 1 else 'ies'};" if count else "No open anomalies."


def test_a_status_change_updates_the_narratives_open_count_with_the_badge(admin_user, org, anomaly):
    """The narrative says how many anomalies are open: after Acknowledge it still said the
    old number beside a badge with the new one, until a reload."""
    open_before = queries.anomalies_open_count(org)
    assert _open_count_said(open_before) in page_client(admin_user).get(reverse("insights:index")).text
    client = page_client(admin_user, **{"HX-Request": "true"})
    response = client.post(reverse("insights:anomaly-status", args=[anomaly.pk]), {"status": "acknowledged"})
    story = re.search(r'<section [^>]*id="narrative"[^>]* hx-swap-oob="true">(.*?)</section>', response.text, re.S)
    assert story and _open_count_said(open_before - 1) in story.group(1)
    assert f'hx-swap-oob="true">{open_before - 1} open</span>' in response.text


def test_plain_post_redirects_back(admin_user, anomaly):
    response = page_client(admin_user).post(
        reverse("insights:anomaly-status", args=[anomaly.pk]), {"status": "resolved"}, follow=True
    )
    assert response.status_code == 200 and "Anomaly marked resolved." in response.text
    anomaly.refresh_from_db()
    assert anomaly.status == "resolved"


def test_analyst_cannot_change_status(analyst_user, anomaly):
    response = page_client(analyst_user).post(
        reverse("insights:anomaly-status", args=[anomaly.pk]), {"status": "resolved"}
    )
    assert response.status_code == 403
    anomaly.refresh_from_db()
    assert anomaly.status == "open"


def test_foreign_anomaly_is_a_404_page(admin_user, foreign_anomaly):
    response = page_client(admin_user).post(
        reverse("insights:anomaly-status", args=[foreign_anomaly.pk]), {"status": "resolved"}
    )
    assert response.status_code == 404 and "<html" in response.text
    foreign_anomaly.refresh_from_db()
    assert foreign_anomaly.status == "open"


@pytest.mark.parametrize("status", ["", "closed", "x" * 500])
def test_bad_status_is_400(admin_user, anomaly, status):
    response = page_client(admin_user).post(reverse("insights:anomaly-status", args=[anomaly.pk]), {"status": status})
    assert response.status_code == 400
    anomaly.refresh_from_db()
    assert anomaly.status == "open"


def test_status_endpoint_is_post_only(admin_user, anomaly):
    assert page_client(admin_user).get(reverse("insights:anomaly-status", args=[anomaly.pk])).status_code == 405


# --- Narrative -----------------------------------------------------------------------------


def test_admin_regenerates_the_narrative(admin_user, org, usage):
    client = page_client(admin_user, **{"HX-Request": "true"})
    before = Insight.objects.filter(organization=org).count()
    response = client.post(reverse("insights:narrative-refresh"))
    assert response.status_code == 200 and 'id="narrative"' in response.text
    assert Insight.objects.filter(organization=org).count() == before + 1


def test_analyst_cannot_regenerate(analyst_user):
    assert page_client(analyst_user).post(reverse("insights:narrative-refresh")).status_code == 403


# --- Forecast fragment ---------------------------------------------------------------------


def test_forecast_fragment_for_one_feature(analyst_user, usage):
    feature = usage[2]
    response = page_client(analyst_user).get(reverse("insights:feature-forecast", args=[feature.pk]), {"days": 7})
    assert response.status_code == 200
    assert "<html" not in response.text  # a fragment to hx-get into the feature page
    spec_id = f"forecast-spec-{feature.pk}"
    assert f'data-chart="{spec_id}"' in response.text
    spec = json.loads(response.text.split(f'<script id="{spec_id}" type="application/json">')[1].split("</script>")[0])
    assert len(spec["labels"]) == 28 + 7
    assert spec["band"]["upper"][-1] >= spec["series"][1]["data"][-1] >= spec["band"]["lower"][-1]
    assert spec["series"][0]["data"][27] is not None and spec["series"][0]["data"][28] is None


def test_forecast_json(analyst_user, usage):
    feature = usage[0]
    response = page_client(analyst_user).get(
        reverse("insights:feature-forecast", args=[feature.pk]), {"days": 14, "format": "json"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["days"] == 14 and [f["feature_key"] for f in body["features"]] == [feature.key]
    assert len(body["features"][0]["points"]) == 14


def test_forecast_picker_query_form(analyst_user, usage):
    response = page_client(analyst_user).get(reverse("insights:forecast"), {"feature": usage[1].pk, "days": 30})
    assert response.status_code == 200 and f"forecast-spec-{usage[1].pk}" in response.text


def test_forecast_feature_without_data(analyst_user, org, usage):
    lonely = features_make(org, 1, prefix="lonely")[0]
    response = page_client(analyst_user).get(reverse("insights:feature-forecast", args=[lonely.pk]))
    assert response.status_code == 200
    assert "Not enough data for a forecast" in response.text


def test_forecast_foreign_or_unknown_feature_is_404(analyst_user, other_org, usage):
    foreign = features_make(other_org, 1, prefix="globex")[0]
    client = page_client(analyst_user)
    assert client.get(reverse("insights:feature-forecast", args=[foreign.pk])).status_code == 404
    assert client.get(reverse("insights:forecast"), {"feature": "abc"}).status_code == 404
    assert client.get(reverse("insights:forecast")).status_code == 404


@pytest.mark.parametrize("days", ["0", "99", "many"])
def test_forecast_bad_days_is_400(analyst_user, usage, days):
    response = page_client(analyst_user).get(reverse("insights:feature-forecast", args=[usage[0].pk]), {"days": days})
    assert response.status_code == 400


@pytest.fixture
def admin_page(admin_user):
    return page_client(admin_user)


def test_analyst_cannot_create_webhooks(analyst_user, org):
    response = page_client(analyst_user).post(reverse("webhook-settings:index"), {"url": "http://127.0.0.1/x"})
    assert response.status_code == 403
    assert not Webhook.objects.filter(organization=org).exists()


def test_forecast_needs_analyst(org, usage):
    member = make_member(org, Role.MEMBER)
    assert page_client(member).get(reverse("insights:feature-forecast", args=[usage[0].pk])).status_code == 403


def test_charts_are_cached_until_the_next_rollup(analyst_user, org):
    from analytics.rollup import rollup_day

    client = page_client(analyst_user)
    assert 'data-chart="zscore-spec"' not in client.get(reverse("insights:index")).text
    rollups_make(org, features_make(org, 4), end=yesterday(), days=40)
    # Same rollup generation: the cached (empty) charts are still shown …
    assert 'data-chart="zscore-spec"' not in client.get(reverse("insights:index")).text
    # … a rollup (here of a day long before the data) bumps it and the charts appear.
    rollup_day(yesterday() - timedelta(days=400), org=org)
    assert 'data-chart="zscore-spec"' in client.get(reverse("insights:index")).text


def test_htmx_request_without_session_redirects_the_whole_page(db):
    response = Client(headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/insights/?status=open"}).get(
        reverse("insights:index"), headers={"HX-Target": "anomalies-section"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=%2Finsights%2F%3Fstatus%3Dopen"


# --- Webhooks ------------------------------------------------------------------------------


@pytest.fixture
def allow_private_webhooks(settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True


def test_webhook_create_shows_secret_once(admin_page, org, allow_private_webhooks):
    response = admin_page.post(
        reverse("webhook-settings:index"),
        {"url": "http://127.0.0.1:9/hook", "events": ["anomaly.created", "export.daily"], "active": "on"},
    )
    assert response.status_code == 200
    webhook = Webhook.objects.get(organization=org)
    assert webhook.secret in response.text
    assert sorted(webhook.events) == ["anomaly.created", "export.daily"] and webhook.active
    listing = admin_page.get(reverse("webhook-settings:index")).text
    assert webhook.secret not in listing and "http://127.0.0.1:9/hook" in listing


@pytest.mark.parametrize(
    "data,field",
    [
        ({"url": "not a url", "events": ["anomaly.created"]}, "url"),
        ({"url": "ftp://example.com/x", "events": ["anomaly.created"]}, "url"),
        ({"url": "http://127.0.0.1:9/hook", "events": []}, "events"),
        ({"url": "http://127.0.0.1:9/hook", "events": ["user.deleted"]}, "events"),
    ],
)
def test_webhook_bad_input(admin_page, org, data, field):
    response = admin_page.post(reverse("webhook-settings:index"), data)
    assert response.status_code == 200
    assert f'data-field="{field}"' in response.text
    assert not Webhook.objects.filter(organization=org).exists()


def test_webhook_private_address_is_refused_with_a_message(admin_page, org, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = admin_page.post(
        reverse("webhook-settings:index"), {"url": "http://127.0.0.1/x", "events": ["export.daily"]}
    )
    assert response.status_code == 200
    assert "private, loopback or link-local" in response.text
    assert not Webhook.objects.filter(organization=org).exists()


def test_webhook_toggle_delete_and_deliveries(admin_page, org, other_org, allow_private_webhooks):
    webhook = webhooks.webhook_create(org, url="http://127.0.0.1:9/a", events=["anomaly.created"])
    foreign = webhooks.webhook_create(other_org, url="http://127.0.0.1:9/b", events=["anomaly.created"])
    WebhookDelivery.objects.create(webhook=webhook, event="anomaly.created", status_code=503, error="HTTP 503")
    page = admin_page.get(reverse("webhook-settings:index")).text
    assert "HTTP 503" in page and "http://127.0.0.1:9/b" not in page

    response = admin_page.post(reverse("webhook-settings:toggle", args=[webhook.pk]), {"active": "0"})
    assert "is now paused" in response.text
    webhook.refresh_from_db()
    assert webhook.active is False

    for name, data in (("webhook-settings:toggle", {"active": "0"}), ("webhook-settings:delete", {})):
        assert admin_page.post(reverse(name, args=[foreign.pk]), data).status_code == 404
    foreign.refresh_from_db()
    assert foreign.active

    response = admin_page.post(reverse("webhook-settings:delete", args=[webhook.pk]))
    assert response.status_code == 200 and "Webhook deleted." in response.text
    assert not Webhook.objects.filter(pk=webhook.pk).exists()
