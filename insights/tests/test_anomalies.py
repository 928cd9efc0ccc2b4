"""Anomaly runs over rollups (upsert, idempotence, tenancy), alerts, export, Celery tasks
and the anomalies / chart-data API."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction

from core.testing import deleted_before_update
from insights import notify, services, tasks, webhooks
from insights.models import Anomaly, WebhookDelivery
from insights.tests.helpers import StubServer, features_make, rollups_make, yesterday

LIST = "/api/v1/ai/anomalies"


@pytest.fixture
def spiky(org):
    """70 days of 6 features; feature 2 spikes ×4 yesterday, feature 4 drops to ×0.2 two days ago."""
    features = features_make(org, 6)
    end = yesterday()
    spikes = {(2, end): 4.0, (4, end - timedelta(days=2)): 0.2}
    rollups_make(org, features, end=end, days=70, spikes=spikes, seed=4)
    return features


def timeseries_rows(org):
    return Anomaly.objects.filter(organization=org, detector="timeseries")


def test_detect_finds_injected_days_and_upserts(org, spiky):
    created = services.anomalies_detect(org)
    ts = timeseries_rows(org)
    found = {(a.feature_id, a.date, a.details["direction"]) for a in ts}
    assert (spiky[2].id, yesterday(), "spike") in found
    assert (spiky[4].id, yesterday() - timedelta(days=2), "drop") in found
    assert {a.feature_id for a in ts} == {spiky[2].id, spiky[4].id}
    assert len(created) == Anomaly.objects.filter(organization=org).count()
    spike = ts.get(feature=spiky[2], metric="event_count")
    assert spike.value > 3 * spike.expected and spike.score >= 4 and spike.status == "open"
    outliers = Anomaly.objects.filter(organization=org, detector="outlier_features")
    assert outliers.count() >= 1 and all(a.date == yesterday() for a in outliers)

    # A second run creates nothing and keeps statuses.
    spike.status = "acknowledged"
    spike.save(update_fields=["status"])
    before = Anomaly.objects.filter(organization=org).count()
    assert services.anomalies_detect(org) == []
    assert Anomaly.objects.filter(organization=org).count() == before
    spike.refresh_from_db()
    assert spike.status == "acknowledged"


def test_detect_skips_today_and_empty_orgs(org, other_org):
    assert services.anomalies_detect(other_org) == []
    features = features_make(org, 3)
    rollups_make(
        org, features, end=yesterday() + timedelta(days=1), days=60, spikes={(0, yesterday() + timedelta(days=1)): 0.1}
    )
    services.anomalies_detect(org)
    assert not Anomaly.objects.filter(date__gt=yesterday()).exists()


def test_detect_is_scoped_to_the_organisation(org, spiky, other_org):
    features = features_make(other_org, 3, prefix="other")
    rollups_make(other_org, features, end=yesterday(), days=70, seed=9)
    services.anomalies_detect(other_org)
    assert not Anomaly.objects.filter(organization=other_org, feature__organization=org).exists()
    services.anomalies_detect(org)
    assert not Anomaly.objects.filter(organization=org, feature__organization=other_org).exists()


def test_stale_open_findings_are_removed_on_rerun(org, spiky):
    services.anomalies_detect(org)
    from analytics.models import DailyFeatureUsage

    # Late data re-rolled yesterday: the spike is gone.
    row = DailyFeatureUsage.objects.get(organization=org, feature=spiky[2], date=yesterday())
    week_ago = DailyFeatureUsage.objects.get(organization=org, feature=spiky[2], date=yesterday() - timedelta(days=7))
    DailyFeatureUsage.objects.filter(pk=row.pk).update(
        event_count=week_ago.event_count, daily_active_users=week_ago.daily_active_users
    )
    services.anomalies_detect(org)
    assert not timeseries_rows(org).filter(feature=spiky[2], date=yesterday()).exists()


def test_alerts_email_admins_and_post_signed_webhooks(
    org, spiky, settings, admin_user, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as receiver:
        webhooks.webhook_create(org, url=receiver.url, events=["anomaly.created"])
        webhooks.webhook_create(org, url=receiver.url + "/export", events=["export.daily"])
        created = services.anomalies_detect(org)
        with django_capture_on_commit_callbacks(execute=True):
            sent = notify.alerts_send(org, created)
    due = [a for a in created if a.detector == "timeseries" and abs(a.score) >= org.alert_threshold]
    assert sent == {"anomalies": len(due), "emails": 1, "webhooks": 1}
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [admin_user.email]
    assert "Feature 2" in mail.outbox[0].body
    assert len(receiver.requests) == 1  # only the anomaly.created hook
    import json

    body = json.loads(receiver.requests[0][2])
    assert body["event"] == "anomaly.created"
    assert {a["id"] for a in body["data"]["anomalies"]} == {a.id for a in due}
    assert not Anomaly.objects.filter(pk__in=[a.id for a in due], notified_at__isnull=True).exists()
    # Already notified: nothing is sent twice.
    with django_capture_on_commit_callbacks(execute=True):
        assert notify.alerts_send(org, created)["anomalies"] == 0
    assert len(mail.outbox) == 1


def test_the_alert_email_tells_an_anomaly_without_a_baseline_without_an_expected_value(org, spiky, admin_user):
    created = services.anomalies_detect(org)
    due = [a for a in created if a.detector == "timeseries" and abs(a.score) >= org.alert_threshold]
    Anomaly.objects.filter(pk=due[0].pk).update(expected=None)
    due[0].expected = None
    notify.alerts_send(org, due[:1])
    line = next(line for line in mail.outbox[0].body.splitlines() if line.startswith("- "))
    assert "expected" not in line and f"{due[0].value:.1f} (" in line


@pytest.mark.django_db(transaction=True)
def test_alerts_of_a_rolled_back_run_post_nothing(org, spiky, settings, admin_user):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as receiver:
        webhooks.webhook_create(org, url=receiver.url, events=["anomaly.created"])
        with pytest.raises(RuntimeError), transaction.atomic():
            created = services.anomalies_detect(org)
            assert notify.alerts_send(org, created)["webhooks"] == 1
            raise RuntimeError("the run fails after alerting")
    assert receiver.requests == [] and not WebhookDelivery.objects.exists()
    assert not Anomaly.objects.exists()


def test_an_anomaly_handled_before_its_digest_is_not_listed_as_new(org, spiky, admin_user):
    created = services.anomalies_detect(org)
    due = [a for a in created if a.detector == "timeseries" and abs(a.score) >= org.alert_threshold]
    assert len(due) >= 2
    Anomaly.objects.filter(pk=due[0].pk).update(status=Anomaly.Status.RESOLVED)
    sent = notify.alerts_send(org, created)
    assert sent["anomalies"] == len(due) - 1
    assert f"{len(due) - 1} new anomal" in mail.outbox[0].subject


def test_alert_threshold_filters(org, spiky):
    org.alert_threshold = 1000
    org.save(update_fields=["alert_threshold"])
    created = services.anomalies_detect(org)
    assert notify.alerts_send(org, created)["anomalies"] == 0
    assert mail.outbox == []


def test_alerts_pick_up_what_a_failed_run_left_in_one_read(org, spiky, admin_user, django_assert_num_queries):
    created = services.anomalies_detect(org)
    due = {a.pk for a in created if a.detector == "timeseries" and abs(a.score) >= org.alert_threshold}
    # The run that created them never alerted: the next one is handed none of them.
    # Each channel in a savepoint of its own (inside the test's transaction), released:
    # webhooks: due anomalies with their features (claimed), the webhooks (none), mark;
    # e-mail: the same claim, the open count, admins, mark.
    with django_assert_num_queries(11):
        sent = notify.alerts_send(org, [], unnotified_days=services.DETECT_DAYS + 1)
    assert sent["anomalies"] == len(due) > 0 and len(mail.outbox) == 1
    assert set(Anomaly.objects.filter(notified_at__isnull=False).values_list("pk", flat=True)) == due
    with django_assert_num_queries(6):  # each channel's claim finds nothing
        assert notify.alerts_send(org, created, unnotified_days=services.DETECT_DAYS + 1)["anomalies"] == 0


def test_after_rollup_task_detects_and_alerts(org, spiky):
    result = tasks.after_rollup.delay(org_id=org.id, dates=[yesterday().isoformat()]).get()
    assert result["anomalies"] >= 2 and result["alerts"] >= 2
    assert len(mail.outbox) == 1
    assert tasks.after_rollup.delay(org_id=999999, dates=[]).get() == {"anomalies": 0, "alerts": 0}


def test_export_daily_posts_kpis(org, spiky, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as receiver:
        webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])
        webhooks.webhook_create(org, url=receiver.url + "/anomalies", events=["anomaly.created"])
        with django_capture_on_commit_callbacks(execute=True):
            assert tasks.export_daily_all.delay(yesterday().isoformat()).get() == 1
    import json

    assert len(receiver.requests) == 1
    body = json.loads(receiver.requests[0][2])
    assert body["event"] == "export.daily"
    kpis = body["data"]
    assert kpis["date"] == yesterday().isoformat() and kpis["events"] > 0
    assert kpis["top_features"][0]["feature_key"] == spiky[2].key  # the spiking feature leads
    assert WebhookDelivery.objects.filter(event="export.daily", status_code=200).count() == 1


def test_refresh_all_builds_a_narrative_per_org(org, other_org, spiky):
    from insights.models import Insight

    assert tasks.refresh_all.delay().get() == 2
    assert Insight.objects.filter(organization=org).exists()
    assert Insight.objects.filter(organization=other_org).exists()


def test_beat_schedule_names_existing_tasks():
    from usage_platform.celery import app

    names = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"insights.refresh_all", "insights.export_daily_all"} <= names
    for name in (
        "insights.refresh_all",
        "insights.export_daily_all",
        "insights.after_rollup",
        "insights.deliver_webhook",
    ):
        assert name in app.tasks


# --- API ----------------------------------------------------------------------------------


def test_list_with_feature_names_and_filters(analyst_client, org, spiky):
    services.anomalies_detect(org)
    body = analyst_client.get(LIST, {"detector": "timeseries"}).json()
    assert body["count"] == timeseries_rows(org).count()
    row = body["results"][0]
    assert {"feature_name", "feature_key", "score", "expected", "value", "severity", "status", "details"} <= set(row)
    assert row["feature_name"].startswith("Feature")
    assert analyst_client.get(LIST, {"start": yesterday().isoformat(), "detector": "timeseries"}).json()["count"] >= 1
    assert analyst_client.get(LIST, {"end": (yesterday() - timedelta(days=30)).isoformat()}).json()["count"] == 0
    assert analyst_client.get(LIST, {"status": "resolved"}).json()["count"] == 0
    severity = row["severity"]
    assert all(r["severity"] == severity for r in analyst_client.get(LIST, {"severity": severity}).json()["results"])


@pytest.mark.parametrize(
    "params,field",
    [
        ({"status": "closed"}, "status"),
        ({"severity": "huge"}, "severity"),
        ({"start": "2026-13-01"}, "start"),
        ({"start": "2026-02-01", "end": "2026-01-01"}, "start"),
    ],
)
def test_list_bad_filters_are_400(analyst_client, org, params, field):
    response = analyst_client.get(LIST, params)
    assert response.status_code == 400 and field in response.json()["errors"]


def test_list_query_count(analyst_client, org, spiky, django_assert_max_num_queries):
    services.anomalies_detect(org)
    assert Anomaly.objects.filter(organization=org).count() >= 3
    with django_assert_max_num_queries(3):  # user, count, page with features joined
        assert analyst_client.get(LIST).status_code == 200


def test_patch_status_admin_only_and_tenancy(admin_client, analyst_client, other_client, org, spiky):
    services.anomalies_detect(org)
    anomaly = timeseries_rows(org).first()
    url = f"{LIST}/{anomaly.id}"
    assert analyst_client.patch(url, {"status": "resolved"}, format="json").status_code == 403
    assert other_client.patch(url, {"status": "resolved"}, format="json").status_code == 404
    assert other_client.get(url).status_code == 404
    assert admin_client.patch(url, {"status": "closed"}, format="json").status_code == 400
    response = admin_client.patch(url, {"status": "acknowledged"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "acknowledged"
    anomaly.refresh_from_db()
    assert anomaly.status == "acknowledged"
    assert analyst_client.get(LIST, {"status": "acknowledged"}).json()["count"] == 1
    assert admin_client.patch(f"{LIST}/99999999", {"status": "open"}, format="json").status_code == 404


def test_anomaly_removed_while_its_status_changes_is_404(admin_client, org, spiky):
    # A re-detection (aggregate/run) may delete an open anomaly while an admin PATCHes it.
    services.anomalies_detect(org)
    anomaly = timeseries_rows(org).first()
    with deleted_before_update(Anomaly, anomaly.pk):
        response = admin_client.patch(f"{LIST}/{anomaly.id}", {"status": "resolved"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Anomaly not found.", "errors": {}}


def test_roles_on_reads(member_client, anon_client):
    for path in (LIST, "/api/v1/ai/chart-data", "/api/v1/ai/usage-prediction"):
        assert member_client.get(path).status_code == 403
        assert anon_client.get(path).status_code == 401


def test_chart_data(analyst_client, org, spiky, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        response = analyst_client.get("/api/v1/ai/chart-data")
    assert response.status_code == 200
    body = response.json()
    assert body["metrics"] == ["event_count", "avg_session_duration", "daily_active_users"]
    assert len(body["features"]) == 6 and body["threshold"] > 0
    first = body["features"][0]
    assert set(first["z_scores"]) == set(body["metrics"]) == set(first["metrics"])
    assert first["norm"] >= body["features"][-1]["norm"]
    assert sum(b["count"] for b in body["histogram"]) == 6
    assert [f["feature_key"] for f in body["features"] if f["outlier"]] == [first["feature_key"]]
    assert analyst_client.get("/api/v1/ai/chart-data", {"start": "2026-05-02", "end": "2026-05-01"}).status_code == 400


def test_chart_data_other_org_sees_only_its_own(other_client, org, spiky):
    body = other_client.get("/api/v1/ai/chart-data").json()
    assert body["features"] == [] and body["threshold"] is None


def test_after_rollup_picks_up_anomalies_an_earlier_run_did_not_alert(org, spiky):
    org.alert_threshold = 1000
    org.save(update_fields=["alert_threshold"])
    assert tasks.after_rollup.delay(org_id=org.id, dates=[yesterday().isoformat()]).get()["alerts"] == 0
    org.alert_threshold = 3.5
    org.save(update_fields=["alert_threshold"])
    result = tasks.after_rollup.delay(org_id=org.id, dates=[yesterday().isoformat()]).get()
    assert result["anomalies"] == 0 and result["alerts"] >= 2
    assert len(mail.outbox) == 1


def test_today_partial_rollup_is_ignored_by_the_task(org, spiky):
    from datetime import date

    result = tasks.after_rollup.delay(org_id=org.id, dates=[date.today().isoformat()]).get()
    assert result["anomalies"] >= 2  # judged up to yesterday, not today
    assert not Anomaly.objects.filter(organization=org, date=date.today()).exists()
