"""/api/v1/org/alert-rules: CRUD, per-kind validation naming the bad param, roles, tenant
isolation and the list's query count."""

from datetime import date

import pytest

from analytics.tests.factories import feature
from insights.alerts import rules
from insights.models import AlertFiring, AlertRule
from telemetry.models import Feature

URL = "/api/v1/org/alert-rules"

METRIC = {"name": "Few events", "kind": "metric_threshold", "params": {"metric": "events", "op": "below", "value": 100}}
FUNNEL = {
    "name": "Checkout conversion",
    "kind": "funnel_conversion",
    "params": {"steps": ["cart", "checkout", "paid"], "drop_pct": 30},
}
RETENTION = {"name": "D7 retention", "kind": "retention", "params": {"day": 7, "below": 10}}

pytestmark = pytest.mark.django_db


@pytest.fixture
def funnel_features(org):
    """The features FUNNEL's steps name (a step naming nothing is refused)."""
    return [
        Feature.objects.get_or_create(organization=org, key=key, defaults={"name": key.title()})[0]
        for key in ("cart", "checkout", "paid")
    ]


def test_a_funnel_step_naming_nothing_is_refused_and_a_name_or_id_becomes_the_key(admin_client, funnel_features):
    # It was saved and would have found 0 % conversion after every rollup.
    misspelt = {**FUNNEL, "params": {"steps": ["cart", "chekout"], "below": 10}}
    refused = admin_client.post(URL, misspelt, format="json")
    assert refused.status_code == 400 and "'chekout'" in refused.json()["errors"]["params.steps"][0]
    named = {**FUNNEL, "params": {"steps": ["Cart", funnel_features[2].pk], "below": 10}}
    named["params"]["steps"][1] = str(funnel_features[2].pk)
    created = admin_client.post(URL, named, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["params"]["steps"] == ["cart", "paid"]


@pytest.mark.parametrize("body", [METRIC, FUNNEL, RETENTION])
def test_create_list_get_patch_delete(admin_client, admin_user, funnel_features, body):
    created = admin_client.post(URL, body, format="json")
    assert created.status_code == 201, created.content
    rule = created.json()
    assert rule["kind"] == body["kind"] and rule["active"] is True
    assert AlertRule.objects.get(pk=rule["id"]).created_by == admin_user

    listing = admin_client.get(URL).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == rule["id"]
    assert admin_client.get(f"{URL}/{rule['id']}").json()["name"] == body["name"]

    patched = admin_client.patch(f"{URL}/{rule['id']}", {"active": False, "name": "Renamed"}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False and patched.json()["name"] == "Renamed"

    assert admin_client.delete(f"{URL}/{rule['id']}").status_code == 204
    assert admin_client.get(f"{URL}/{rule['id']}").status_code == 404


def test_defaults_are_filled_in(admin_client, funnel_features):
    rule = admin_client.post(URL, FUNNEL, format="json").json()
    assert rule["params"] == {"steps": ["cart", "checkout", "paid"], "step": 3, "drop_pct": 30.0, "window_days": 7}


@pytest.mark.parametrize(
    ("kind", "params", "field", "says"),
    [
        (
            "metric_threshold",
            {"metric": "events", "op": "above", "value": 1, "feature": "ghost_feature"},
            "params.feature",
            "Unknown feature 'ghost_feature'",
        ),
        ("metric_threshold", {"metric": "events", "op": "below", "value": 0}, "params.value", "could never fire"),
        ("funnel_conversion", {"steps": ["cart", "paid"], "below": 0}, "params.below", "could never fire"),
        ("retention", {"day": 7, "below": 0}, "params.below", "could never fire"),
        ("funnel_conversion", {"steps": ["cart", "paid", "cart"], "below": 10}, "params.steps", "'cart' twice"),
        ("funnel_conversion", {"steps": ["a", " a "], "below": 10}, "params.steps", "'a' twice"),
    ],
)
def test_rules_that_could_never_fire_are_refused(admin_client, org, kind, params, field, says):
    feature(org, "checkout", name="Checkout")
    response = admin_client.post(URL, {"name": "x", "kind": kind, "params": params}, format="json")
    assert response.status_code == 400, response.content
    assert says in " ".join(response.json()["errors"][field])
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize("ref", ["checkout", "Checkout", "CHECKOUT", "id"])
def test_feature_is_taken_by_id_key_or_name_and_stored_as_its_key(admin_client, org, other_org, ref):
    checkout = feature(org, "checkout", name="Checkout")
    feature(other_org, "theirs")
    params = {"metric": "events", "op": "above", "value": 0, "feature": str(checkout.pk) if ref == "id" else ref}
    response = admin_client.post(URL, {"name": "x", "kind": "metric_threshold", "params": params}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["params"]["feature"] == "checkout"
    # Another organisation's feature is unknown here.
    theirs = {**params, "feature": "theirs"}
    refused = admin_client.post(URL, {"name": "x", "kind": "metric_threshold", "params": theirs}, format="json")
    assert refused.status_code == 400 and "params.feature" in refused.json()["errors"]


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("metric_threshold", {"metric": "bogus", "op": "above", "value": 1}, "params.metric"),
        ("metric_threshold", {"metric": "events", "op": "over", "value": 1}, "params.op"),
        ("metric_threshold", {"metric": "events", "op": "above", "value": "ten"}, "params.value"),
        ("metric_threshold", {"metric": "events", "op": "above", "value": True}, "params.value"),
        ("metric_threshold", {"metric": "events", "op": "above", "value": -1}, "params.value"),
        ("metric_threshold", {"metric": "events", "op": "above", "value": 1, "feature": 7}, "params.feature"),
        ("metric_threshold", {"metric": "events", "op": "above", "value": 1, "colour": "red"}, "params.colour"),
        ("funnel_conversion", {"steps": ["only-one"], "below": 10}, "params.steps"),
        ("funnel_conversion", {"steps": "a,b", "below": 10}, "params.steps"),
        ("funnel_conversion", {"steps": ["a", ""], "below": 10}, "params.steps"),
        ("funnel_conversion", {"steps": ["a", "b\x00"], "below": 10}, "params.steps"),
        ("metric_threshold", {"metric": "events", "op": "above", "value": 1, "feature": "x\x00"}, "params.feature"),
        ("funnel_conversion", {"steps": ["a", "b"], "step": 3, "below": 10}, "params.step"),
        ("funnel_conversion", {"steps": ["a", "b"], "step": 1, "below": 10}, "params.step"),
        ("funnel_conversion", {"steps": ["a", "b"]}, "params.below"),
        ("funnel_conversion", {"steps": ["a", "b"], "below": 10, "drop_pct": 5}, "params.below"),
        ("funnel_conversion", {"steps": ["a", "b"], "below": 101}, "params.below"),
        ("funnel_conversion", {"steps": ["a", "b"], "drop_pct": 0}, "params.drop_pct"),
        ("funnel_conversion", {"steps": ["a", "b"], "below": 5, "window_days": 0}, "params.window_days"),
        ("funnel_conversion", {"steps": ["a", "b"], "below": 5, "window_days": 91}, "params.window_days"),
        ("retention", {"day": 14, "below": 10}, "params.day"),
        ("retention", {"day": 7}, "params.below"),
        ("retention", {"day": True, "below": 10}, "params.day"),
        # 7.0 == 7 passed the check, was stored as 7.0 and made the evaluation of every
        # rule of the organisation raise (f"d{n}", range(n)).
        ("retention", {"day": 7.0, "below": 10}, "params.day"),
    ],
)
def test_bad_params_are_400_naming_the_param(admin_client, kind, params, field):
    response = admin_client.post(URL, {"name": "x", "kind": kind, "params": params}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["errors"], body
    assert body["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "retention", "params": {"day": 7, "below": 10}}, "name"),
        ({"name": "x", "kind": "sometimes", "params": {}}, "kind"),
        ({"name": "x", "kind": "retention", "params": [1, 2]}, "params"),
        ({"name": "   ", "kind": "retention", "params": {"day": 7, "below": 10}}, "name"),
        ({"name": "x" * 121, "kind": "retention", "params": {"day": 7, "below": 10}}, "name"),
    ],
)
def test_bad_bodies_are_400(admin_client, body, field):
    response = admin_client.post(URL, body, format="json")
    assert response.status_code == 400 and field in response.json()["errors"], response.content


@pytest.mark.parametrize("extra", [{"extra": "y"}, {"id": 999}, {"last_evaluated_at": "2026-12-01T00:00:00Z"}])
def test_unknown_body_fields_are_400_naming_them(admin_client, extra):
    created = admin_client.post(URL, RETENTION | extra, format="json")
    assert created.status_code == 400, created.content
    (name,) = extra
    assert list(created.json()["errors"]) == [name] and "Unknown field" in created.json()["errors"][name][0]
    assert not AlertRule.objects.exists()
    rule = admin_client.post(URL, RETENTION, format="json").json()
    patched = admin_client.patch(f"{URL}/{rule['id']}", {"active": False} | extra, format="json")
    assert patched.status_code == 400 and name in patched.json()["errors"]
    assert AlertRule.objects.get().active


def test_patch_of_params_says_it_replaces_them_all(admin_client):
    rule = admin_client.post(URL, METRIC, format="json").json()
    response = admin_client.patch(f"{URL}/{rule['id']}", {"params": {"value": 20}}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert "replaces params as a whole" in body["detail"]
    assert any("replaces params as a whole" in m for m in body["errors"]["params.metric"])
    schema = admin_client.get("/api/schema/?format=json").content.decode()
    assert "PATCH replaces params as a whole" in schema


def test_patch_checks_params_against_the_kind(admin_client):
    rule = admin_client.post(URL, RETENTION, format="json").json()
    bad = admin_client.patch(f"{URL}/{rule['id']}", {"params": {"day": 2, "below": 10}}, format="json")
    assert bad.status_code == 400 and "params.day" in bad.json()["errors"]
    no_params = admin_client.patch(f"{URL}/{rule['id']}", {"kind": "metric_threshold"}, format="json")
    assert no_params.status_code == 400 and "params" in no_params.json()["errors"]
    switched = admin_client.patch(
        f"{URL}/{rule['id']}", {"kind": METRIC["kind"], "params": METRIC["params"]}, format="json"
    )
    assert switched.status_code == 200 and switched.json()["kind"] == "metric_threshold"


def test_roles(analyst_client, member_client, anon_client, admin_client):
    rule = admin_client.post(URL, METRIC, format="json").json()
    for client in (analyst_client, member_client):
        assert client.get(URL).status_code == 403
        assert client.post(URL, METRIC, format="json").status_code == 403
        assert client.patch(f"{URL}/{rule['id']}", {"active": False}, format="json").status_code == 403
        assert client.delete(f"{URL}/{rule['id']}").status_code == 403
    assert anon_client.get(URL).status_code == 401


def test_other_organisations_rule_is_404(other_client, admin_client):
    rule = admin_client.post(URL, METRIC, format="json").json()
    assert other_client.get(f"{URL}/{rule['id']}").status_code == 404
    assert other_client.patch(f"{URL}/{rule['id']}", {"active": False}, format="json").status_code == 404
    assert other_client.delete(f"{URL}/{rule['id']}").status_code == 404
    assert other_client.get(f"{URL}/{rule['id']}/firings").status_code == 404
    assert other_client.get(URL).json()["count"] == 0
    assert AlertRule.objects.get(pk=rule["id"]).active is True


def test_list_query_count(admin_client, org, django_assert_num_queries):
    for i in range(5):
        rules.alert_rule_create(org, name=f"r{i}", kind="retention", params={"day": 1, "below": 5})
    # auth user + count + page
    with django_assert_num_queries(3):
        response = admin_client.get(URL)
    assert response.json()["count"] == 5


def test_firings_listed_newest_first(admin_client, org):
    rule = rules.alert_rule_create(org, name="r", kind="retention", params={"day": 1, "below": 5})
    for day in (date(2026, 11, 1), date(2026, 11, 2)):
        AlertFiring.objects.create(
            rule=rule, organization=org, day=day, window_start=day, value=1, threshold=5, message=f"m {day}"
        )
    results = admin_client.get(f"{URL}/{rule.id}/firings").json()["results"]
    assert [r["day"] for r in results] == ["2026-11-02", "2026-11-01"]


def test_schema_documents_the_endpoints(admin_client):
    schema = admin_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/org/alert-rules" in paths and "/api/v1/org/alert-rules/{rule_id}" in paths
