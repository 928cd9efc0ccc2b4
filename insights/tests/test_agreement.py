"""Insights that agree with themselves: the narrative, the Insights page, the API and the
digests count the same open anomalies; the "outlier features" rule is a ranking beside them,
never an anomaly; detection explains what it finds, end to end from raw events."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse

from analytics.rollup import rollup_range
from core.testing import page_client
from insights import narrative, notify, services, webhooks
from insights.models import Anomaly
from insights.tests.helpers import (
    StubServer,
    end_users_make,
    events_make,
    features_make,
    rollups_make,
    yesterday,
)

LIST = "/api/v1/ai/anomalies"
NARRATIVE = "/api/v1/ai/usage-insights"


@pytest.fixture
def spiky(org):
    """70 days of 6 features; feature 2 spikes ×4 yesterday, feature 4 drops to ×0.2 two
    days ago; detection has run (time-series anomalies and the outlier ranking)."""
    features = features_make(org, 6)
    end = yesterday()
    rollups_make(org, features, end=end, days=70, spikes={(2, end): 4.0, (4, end - timedelta(days=2)): 0.2}, seed=4)
    services.anomalies_detect(org)
    return features


def open_anomalies(org):
    return Anomaly.objects.filter(organization=org, detector="timeseries", status="open")


def anomaly_bullet(insight):
    return next(b for b in insight.bullets if "anomal" in b)


def test_the_ranking_is_not_counted_as_anomalies(org, spiky):
    ranking = Anomaly.objects.filter(organization=org, detector="outlier_features")
    assert ranking.exists() and open_anomalies(org).count() >= 2
    insight = narrative.insight_current(org)
    count = open_anomalies(org).count()
    assert insight.open_anomalies == count
    assert anomaly_bullet(insight).startswith(f"{count} open anomalies; latest: ")


def test_api_counts_what_the_narrative_counts(analyst_client, org, spiky):
    listed = analyst_client.get(LIST, {"status": "open"}).json()
    assert {row["detector"] for row in listed["results"]} == {"timeseries"}
    told = analyst_client.get(NARRATIVE).json()
    assert told["open_anomalies"] == listed["count"] == open_anomalies(org).count()
    assert told["bullets"][-1].startswith(f"{listed['count']} open anomalies")
    # The ranking is still there, by name.
    ranking = analyst_client.get(LIST, {"detector": "outlier_features"}).json()
    assert ranking["count"] >= 1 and {r["detector"] for r in ranking["results"]} == {"outlier_features"}


def test_a_status_change_rewrites_the_narrative_that_counted_it(org, spiky, admin_user):
    before = narrative.insight_current(org)
    first = open_anomalies(org).first()
    services.anomaly_set_status(org, first.pk, "acknowledged", user=admin_user)
    after = narrative.insight_current(org)  # the cached one counted one more: regenerated
    assert after.pk != before.pk and after.open_anomalies == before.open_anomalies - 1
    left = open_anomalies(org).count()
    assert anomaly_bullet(after).startswith(f"{left} open anomal")
    for anomaly in open_anomalies(org):
        services.anomaly_set_status(org, anomaly.pk, "resolved", user=admin_user)
    assert "No open anomalies." in narrative.insight_current(org).bullets
    assert narrative.insight_current(org).open_anomalies == 0


def test_page_shows_the_same_count_and_the_ranking_beside_the_table(analyst_user, org, spiky):
    text = page_client(analyst_user).get(reverse("insights:index")).text
    count = open_anomalies(org).count()
    assert f'data-testid="open-anomalies">{count} open<' in text
    assert f"{count} open anomalies; latest:" in text
    table = text.split('id="anomalies-section"')[1].split("</section>")[0]
    assert "Outlier among features" not in table
    for anomaly in open_anomalies(org):
        assert f'id="anomaly-{anomaly.pk}"' in table
    unusual = text.split('data-testid="unusual-features"')[1].split("</section>")[0]
    ranking = Anomaly.objects.filter(organization=org, detector="outlier_features").select_related("feature")
    assert unusual.count('data-testid="unusual-feature"') == ranking.count()
    for row in ranking:
        assert row.feature.name in unusual and f'id="anomaly-{row.pk}"' not in text
    assert "A ranking, not alarms" in unusual


def test_the_narrative_names_first_the_anomaly_the_table_lists_first(analyst_client, org):
    """Drops score below zero: "strongest first" is by |score|, as the table and the API
    sort. The narrative sorted by the signed score and called a mild spike the latest over a
    strong drop of the same day."""
    spiking, dropping = features_make(org, 2)
    day = yesterday()
    rollups_make(org, [spiking, dropping], end=day, days=28)
    for feature, score, direction in ((spiking, 4.5, "spike"), (dropping, -12.0, "drop")):
        Anomaly.objects.create(
            organization=org, feature=feature, date=day, detector="timeseries", metric="event_count",
            value=10, expected=50, score=score, severity="high", details={"direction": direction},
        )  # fmt: skip
    first = analyst_client.get(LIST, {"status": "open"}).json()["results"][0]
    assert first["feature_id"] == dropping.pk
    bullet = anomaly_bullet(narrative.insight_current(org))
    assert f"latest: a drop in event count of {dropping.name} on {day}" in bullet


def test_no_open_anomalies_is_said_only_over_an_empty_count(analyst_user, org, admin_user):
    features = features_make(org, 4)
    rollups_make(org, features, end=yesterday(), days=70, seed=3)
    services.anomalies_detect(org)
    assert not open_anomalies(org).exists()
    assert Anomaly.objects.filter(organization=org, detector="outlier_features").exists()
    text = page_client(analyst_user).get(reverse("insights:index")).text
    assert "No open anomalies." in text and 'data-testid="open-anomalies">0 open<' in text
    assert "No anomalies yet" in text  # the table is empty: the ranking is not in it


def test_digests_carry_the_open_count_and_the_explanation(
    org, spiky, settings, admin_user, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    Anomaly.objects.filter(organization=org).update(notified_at=None)
    spike = open_anomalies(org).get(feature=spiky[2], metric="event_count")
    spike.explanation = {
        "segment": {
            "dimension": "event_type", "value": "export", "label": "event type “export”",
            "share_of_change": 0.9, "usual_share": 0.1, "value_on_day": 900, "expected": 30.0,
        },
        "concentrated": True, "segments": [], "day": str(spike.date), "baseline_days": [], "dimensions": [],
    }  # fmt: skip
    spike.save(update_fields=["explanation"])
    with StubServer([(200, {}, 0)]) as receiver:
        webhooks.webhook_create(org, url=receiver.url, events=["anomaly.created"])
        with django_capture_on_commit_callbacks(execute=True):  # deliveries are sent after the commit
            notify.alerts_send(org, list(open_anomalies(org)))
    count = open_anomalies(org).count()
    body = mail.outbox[0].body
    assert f"Open anomalies now: {count}" in body
    assert "mostly event type “export” (90 % of the change; usually 10 % of usage)" in body
    payload = json.loads(receiver.requests[0][2])["data"]
    assert payload["open_anomalies"] == count
    sent = next(a for a in payload["anomalies"] if a["id"] == spike.pk)
    assert sent["segment"]["value"] == "export" and sent["explanation"].startswith("mostly event type “export”")
    kpis = notify.daily_kpis(org, yesterday())
    assert kpis["open_anomalies"] == open_anomalies(org).filter(date=yesterday()).count()


def test_detection_explains_what_it_finds_from_raw_events(analyst_client, org):
    feature = features_make(org, 1)[0]
    people = end_users_make(org)
    end = yesterday()
    days = [end - timedelta(days=n) for n in range(70)]
    events_make(org, feature, people, days=days, per_day=30)
    events_make(org, feature, people[:4], days=[end], per_day=120, event_type="export")
    rollup_range(days[-1], end, org=org)
    services.anomalies_detect(org)
    spike = Anomaly.objects.get(organization=org, detector="timeseries", metric="event_count", date=end)
    assert spike.explanation["segment"]["dimension"] == "event_type"
    assert spike.explanation["segment"]["value"] == "export" and spike.explanation["concentrated"]
    row = next(r for r in analyst_client.get(LIST).json()["results"] if r["id"] == spike.pk)
    assert row["explanation"]["summary"].startswith("mostly event type “export” (")
    assert row["explanation"]["segment"]["share_of_change"] > 0.9
    # A re-run with the same numbers keeps the explanation; new numbers are explained again.
    services.anomalies_detect(org)
    spike.refresh_from_db()
    assert spike.explanation["segment"]["value"] == "export"
    events_make(org, feature, people[4:6], days=[end], per_day=200, event_type="import")
    rollup_range(end, end, org=org)
    services.anomalies_detect(org)
    spike.refresh_from_db()
    assert spike.explanation["segment"]["value"] == "import"
