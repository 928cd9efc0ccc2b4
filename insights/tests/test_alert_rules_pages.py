"""Settings → Alert rules through Django's test client: empty state, create/edit/pause/delete
with HTMX fragments, errors next to their fields (never a 500), roles, another
organisation's rule → 404, and the page's query count with firings."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.testing import page_client
from insights.alerts import rules
from insights.models import AlertFiring, AlertRule, Webhook
from telemetry.models import Feature
from tenants.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def funnel_features(org):
    """The features the funnel rules' steps name (a step naming nothing is refused)."""
    return [
        Feature.objects.get_or_create(organization=org, key=key, defaults={"name": key.title()})[0]
        for key in ("cart", "checkout", "paid")
    ]


INDEX = "alert-rule-settings:index"


@pytest.fixture
def admin_page(admin_user):
    return page_client(admin_user)


@pytest.fixture
def htmx_page(admin_user):
    return page_client(admin_user, **{"HX-Request": "true"})


def _rule(org, name="Few events", **params):
    params = params or {"metric": "events", "op": "below", "value": 100}
    return rules.alert_rule_create(org, name=name, kind="metric_threshold", params=params)


def test_empty_state_and_kind_forms(admin_page):
    page = admin_page.get(reverse(INDEX)).text
    assert "No alert rules yet" in page and 'name="metric"' in page and 'name="steps"' not in page
    funnel = admin_page.get(reverse(INDEX), {"kind": "funnel_conversion"}).text
    assert 'name="steps"' in funnel and 'name="drop_pct"' in funnel and 'name="metric"' not in funnel
    retention = admin_page.get(reverse(INDEX), {"kind": "retention"}).text
    assert 'name="day"' in retention and 'name="steps"' not in retention


@pytest.mark.parametrize(
    ("data", "params"),
    [
        (
            {"kind": "metric_threshold", "metric": "sessions", "op": "above", "value": "250", "feature": ""},
            {"metric": "sessions", "op": "above", "value": 250.0},
        ),
        (
            {"kind": "funnel_conversion", "steps": "cart, checkout ,paid", "drop_pct": "25", "window_days": "3"},
            {"steps": ["cart", "checkout", "paid"], "step": 3, "drop_pct": 25.0, "window_days": 3},
        ),
        ({"kind": "retention", "day": "30", "below": "12.5"}, {"day": 30, "below": 12.5}),
    ],
)
def test_create_each_kind(htmx_page, org, admin_user, funnel_features, data, params):
    response = htmx_page.post(reverse(INDEX), {"name": "My rule", "active": "on", **data})
    assert response.status_code == 200
    assert 'id="alert-rules-section"' in response.text and "<html" not in response.text
    assert "“My rule” added" in response.text
    rule = AlertRule.objects.get(organization=org)
    assert rule.params == params and rule.active and rule.created_by == admin_user


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "metric_threshold", "metric": "events", "op": "below"}, "value"),
        ({"kind": "metric_threshold", "metric": "events", "op": "below", "value": "abc"}, "value"),
        ({"kind": "funnel_conversion", "steps": "only-one", "below": "5"}, "steps"),
        ({"kind": "funnel_conversion", "steps": "a,b"}, "below"),
        ({"kind": "funnel_conversion", "steps": "a,b", "below": "5", "step": "4"}, "step"),
        ({"kind": "retention", "day": "14", "below": "5"}, "day"),
        ({"kind": "nonsense"}, "kind"),
    ],
)
def test_bad_input_is_shown_next_to_the_field(admin_page, org, data, field):
    response = admin_page.post(reverse(INDEX), {"name": "x", **data})
    assert response.status_code == 200
    if field == "kind":  # a hidden field: its error is shown above the form
        assert "alert-error" in response.text
    else:
        assert f'data-field="{field}"' in response.text
    assert not AlertRule.objects.filter(organization=org).exists()
    assert "params." not in response.text  # the API's names, not the form's


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            {"kind": "funnel_conversion", "steps": "a,b", "below": "5", "drop_pct": "10"},
            "Give exactly one of Below (%)",
        ),
        ({"kind": "funnel_conversion", "steps": "only-one", "below": "5"}, "Funnel steps must list 2 to 10"),
        ({"kind": "funnel_conversion", "steps": "a,b", "below": "5", "step": "4"}, "Step must be a step number"),
        ({"kind": "funnel_conversion", "steps": "a,a", "below": "5"}, "Funnel steps names"),
        (
            {"kind": "metric_threshold", "metric": "events", "op": "above", "value": "1", "feature": "nope"},
            "Unknown feature",
        ),
    ],
)
def test_form_errors_say_the_fields_labels(admin_page, data, says):
    response = admin_page.post(reverse(INDEX), {"name": "x", **data})
    assert says in response.content.decode() and "params." not in response.content.decode()


def test_edit_toggle_delete(htmx_page, org, other_org):
    rule = _rule(org)
    foreign = _rule(other_org, name="Theirs")
    form = htmx_page.get(reverse(INDEX), {"edit": rule.pk}).text
    assert "Edit “Few events”" in form and 'value="100.0"' in form

    edit = reverse("alert-rule-settings:edit", args=[rule.pk])
    data = {"name": "Fewer events", "kind": "metric_threshold", "metric": "events", "op": "below", "value": "50"}
    response = htmx_page.post(edit, {**data, "active": "on"})
    assert "“Fewer events” saved" in response.text
    rule.refresh_from_db()
    assert rule.name == "Fewer events" and rule.params["value"] == 50.0

    response = htmx_page.post(reverse("alert-rule-settings:toggle", args=[rule.pk]), {"active": "0"})
    assert "is now paused" in response.text
    rule.refresh_from_db()
    assert rule.active is False

    for url, body in (
        (reverse("alert-rule-settings:edit", args=[foreign.pk]), data),
        (reverse("alert-rule-settings:toggle", args=[foreign.pk]), {"active": "0"}),
        (reverse("alert-rule-settings:delete", args=[foreign.pk]), {}),
    ):
        assert htmx_page.post(url, body).status_code == 404
    assert htmx_page.get(reverse(INDEX), {"edit": foreign.pk}).status_code == 404
    foreign.refresh_from_db()
    assert foreign.active and foreign.name == "Theirs"
    assert "Theirs" not in htmx_page.get(reverse(INDEX)).text

    response = htmx_page.post(reverse("alert-rule-settings:delete", args=[rule.pk]))
    assert "Alert rule deleted" in response.text and "No alert rules yet" in response.text
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


@pytest.mark.parametrize("edit", ["²", "٣", "abc", "99999999999999999999999", ""])
def test_an_edit_that_names_no_rule_id_shows_the_add_form(admin_page, org, edit):
    """`?edit=²` was a 500: "²".isdigit() is true, int("²") raises."""
    _rule(org)
    response = admin_page.get(reverse(INDEX), {"edit": edit})
    assert response.status_code == 200 and "Add an alert rule" in response.text and "Edit “" not in response.text


@pytest.mark.parametrize("role", [Role.ANALYST, Role.MEMBER])
def test_non_admins_get_403(org, role):
    from conftest import make_member

    client = page_client(make_member(org, role))
    assert client.get(reverse(INDEX)).status_code == 403
    assert client.post(reverse(INDEX), {"name": "x", "kind": "retention", "day": "1", "below": "5"}).status_code == 403
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize("count", [1, 10])
def test_page_query_count(admin_page, org, django_assert_num_queries, count):
    """The same queries for 1 rule as for 10, each shown with its 5 latest firings."""
    now = timezone.now()
    today = now.date()
    for n in range(count):
        rule = _rule(org, name=f"rule {n}")
        AlertFiring.objects.bulk_create(
            AlertFiring(
                rule=rule, organization=org, day=today - timedelta(days=k), window_start=today,
                value=k, threshold=100, message=f"fired-{rule.pk}-{k}", fired_at=now - timedelta(days=k),
            )
            for k in range(1, 8)
        )  # fmt: skip
    # Session, user, organisation, the rules, and their latest firings in one query.
    with django_assert_num_queries(5):
        response = admin_page.get(reverse(INDEX))
    assert response.status_code == 200
    assert response.text.count('data-testid="alert-rule"') == count
    assert f"fired-{rule.pk}-1" in response.text and f"fired-{rule.pk}-6" not in response.text


def test_webhook_form_offers_alert_fired_and_the_slack_format(admin_page, org, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    page = admin_page.get(reverse("webhook-settings:index")).text
    assert 'value="alert.fired"' in page and 'value="slack"' in page
    data = {"url": "http://127.0.0.1:9/slack", "events": ["alert.fired"], "format": "slack", "active": "on"}
    response = admin_page.post(reverse("webhook-settings:index"), data)
    assert response.status_code == 200 and "Slack</span>" in response.text
    assert Webhook.objects.get(organization=org).format == "slack"
