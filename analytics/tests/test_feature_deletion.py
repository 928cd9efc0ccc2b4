"""Deleting a feature takes its events, and the next rollup takes them out of every figure:
the organisation's, the per-user, segment and dimension rows of its days were summed over
all features and kept counting the deleted feature's events and users."""

from datetime import date

import pytest
from django.db import connection
from django.db.models.fields.reverse_related import ManyToOneRel
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.models import DailyOrgUsage
from core.testing import page_client
from telemetry.models import DirtyDay, Feature, UsageEvent
from tenants.models import Organization, User

from .factories import at, end_user, event, feature

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"
D1, D2 = date(2026, 3, 4), date(2026, 3, 9)


@pytest.fixture
def two_features(org):
    """search: u1 on D1; export: u2 (41) on D1 and D2, u1 on D2, one anonymous event on D1."""
    search, export = feature(org, "search"), feature(org, "export")
    u1, u2 = end_user(org, "u1", age=30, gender="F"), end_user(org, "u2", age=41, gender="M")
    event(org, search, u1, at(str(D1), "23:59:59.999"))
    for person, day in ((u2, D1), (u2, D2), (u1, D2), (None, D1)):
        event(org, export, person, at(str(day), "00:00:00"))
    rollup.rollup_range(D1, D2, org)
    return search, export


def figures(client, **filters):
    query = {"start": D1, "end": D2, **filters}
    summary = client.get(f"{BASE}/usage-summary", query).json()
    top = client.get(f"{BASE}/top-users", query).json()["results"]
    points = client.get(f"{BASE}/timeseries", {**query, "metric": "active_users"}).json()["points"]
    return (
        {k: summary[k]["value"] for k in ("total_events", "active_users", "features_tracked")},
        [(row["user_id"], row["events"]) for row in top],
        [p["value"] for p in points if p["value"]],
    )


def test_a_deleted_features_days_are_re_rolled(analyst_client, org, two_features):
    _, export = two_features
    export.delete()
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == {D1, D2}
    rollup.rollup_dirty()
    # Left: u1's one search event on D1.
    assert figures(analyst_client) == ({"total_events": 1, "active_users": 1, "features_tracked": 1}, [("u1", 1)], [1])
    kept = figures(analyst_client, age="18-40", gender="F")
    assert kept == ({"total_events": 1, "active_users": 1, "features_tracked": 1}, [("u1", 1)], [1])
    assert figures(analyst_client, age=">40")[0] == {"total_events": 0, "active_users": 0, "features_tracked": 0}
    split = analyst_client.get(f"{BASE}/usage-summary", {"start": D1, "end": D2, "breakdown": "event_type"}).json()
    assert split["breakdown"]["events"] == [{"key": "interaction", "value": 1}]


def test_features_deleted_as_a_queryset_are_marked_too(org, two_features):
    Feature.objects.filter(organization=org, key__in=["search", "export"]).delete()
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == {D1, D2}


def test_an_organisations_delete_marks_nothing(org, two_features):
    """Its rows all go: a mark written for its features would point at a deleted organisation."""
    org_id = org.pk
    Organization.objects.filter(pk=org_id).delete()
    assert not DirtyDay.objects.filter(organization_id=org_id).exists()


def _rows_of(org, feature_ids):
    """(model name, rows) of every table with rows pointing at `feature_ids`, besides events."""
    found = {}
    for relation in Feature._meta.get_fields(include_hidden=True):
        if isinstance(relation, ManyToOneRel) and relation.related_model is not UsageEvent:
            rows = relation.related_model._base_manager.filter(**{f"{relation.field.name}__in": feature_ids})
            if rows.exists():
                found[relation.related_model.__name__] = rows.count()
    return found


def test_the_admin_deletes_a_feature_through_its_organisation(org, two_features, other_org):
    """Seen at 10 M events: deleting one feature in the admin took 9 s, Django's cascade
    deleting `WHERE feature_id IN (…)` from tables no index leads by feature (every tenant's
    rows read). Expected: every statement that deletes or changes rows names the
    organisation, the rows all go, the days are marked, another organisation keeps its own."""
    search, export = two_features
    theirs = feature(other_org, "export")
    event(other_org, theirs, end_user(other_org, "t1"), at(str(D1), "12:00:00"))
    rollup.rollup_range(D1, D1, other_org)
    assert set(_rows_of(org, [export.pk])) >= {"DailyFeatureUsage", "DailyUserFeatureUsage", "UserFeatureActiveDays"}
    kept_before = _rows_of(other_org, [theirs.pk])

    staff = User.objects.create_superuser(email="staff@platform.example", password="x-Long-Password-1")
    with CaptureQueriesContext(connection) as statements:
        response = page_client(staff).post(f"/admin/telemetry/feature/{export.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content[:500]
    # Those by feature (the feature's own row goes by its id).
    writes = [
        q["sql"]
        for q in statements
        if q["sql"].split()[0] in ("DELETE", "UPDATE") and '"feature_id"' in q["sql"].partition("WHERE")[2]
    ]
    assert len(writes) >= 5 and all('"organization_id"' in sql for sql in writes), writes
    assert not Feature.objects.filter(pk=export.pk).exists() and _rows_of(org, [export.pk]) == {}
    assert not UsageEvent.objects.filter(feature_id=export.pk).exists()
    assert UsageEvent.objects.filter(feature=search).count() == 1
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == {D1, D2}
    assert _rows_of(other_org, [theirs.pk]) == kept_before and UsageEvent.objects.filter(feature=theirs).exists()
    # The next rollup takes its events out of the organisation's figures.
    rollup.rollup_dirty()
    assert DailyOrgUsage.objects.get(organization=org, date=D1).event_count == 1


def test_a_protected_relation_refuses_the_delete_and_nothing_goes(org, two_features, monkeypatch):
    """No table protects a feature today; one that did would refuse as Django's delete does."""
    from django.db.models import PROTECT, ProtectedError

    from analytics.models import DailyFeatureUsage
    from telemetry.services.feature_deletion import features_delete

    _, export = two_features
    monkeypatch.setattr(DailyFeatureUsage._meta.get_field("feature").remote_field, "on_delete", PROTECT)
    with pytest.raises(ProtectedError):
        features_delete(Feature.objects.filter(pk=export.pk))
    assert Feature.objects.filter(pk=export.pk).exists() and UsageEvent.objects.filter(feature=export).count() == 4


def test_a_protected_relation_without_rows_lets_the_delete_through(org, two_features, monkeypatch):
    """As Django's delete: a relation protects only when some of its rows point at the feature."""
    from django.db.models import PROTECT

    from analytics.models import DailyFeatureUsage
    from telemetry.services.feature_deletion import features_delete

    _, export = two_features
    DailyFeatureUsage.objects.filter(feature=export).delete()
    monkeypatch.setattr(DailyFeatureUsage._meta.get_field("feature").remote_field, "on_delete", PROTECT)
    features_delete(Feature.objects.filter(pk=export.pk))
    assert not Feature.objects.filter(pk=export.pk).exists()
    assert not UsageEvent.objects.filter(feature_id=export.pk).exists()


@pytest.fixture
def staff_client(db):
    staff = User.objects.create_superuser(email="staff@platform.example", password="x-Long-Password-1")
    return page_client(staff)


def test_a_feature_with_many_events_is_deleted_by_a_worker_chunk_by_chunk(
    org, two_features, other_org, staff_client, monkeypatch, django_capture_on_commit_callbacks
):
    """In the admin's request the events' delete of a large feature outlasted the web
    processes' statement timeout and rolled back, every time: such a feature is handed to a
    worker, which deletes its events in chunks, then the feature with every row pointing at it."""
    from telemetry.services import feature_deletion

    search, export = two_features
    theirs = feature(other_org, "export")
    event(other_org, theirs, end_user(other_org, "t1"), at(str(D1), "12:00:00"))
    monkeypatch.setattr(feature_deletion, "INLINE_EVENTS", 3)  # export has 4, search 1
    monkeypatch.setattr(feature_deletion, "CHUNK_ROWS", 1)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = staff_client.post(
            "/admin/telemetry/feature/",
            {"action": "delete_selected", "_selected_action": [search.pk, export.pk], "post": "yes"},
            follow=True,
        )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Deleted: search." in page and "Successfully deleted" not in page
    assert "in the background, chunk by chunk (their events number more than 3): export." in page
    # search went at once; export waits for its worker, with all its events, marked.
    assert not Feature.objects.filter(pk=search.pk).exists()
    assert Feature.objects.get(pk=export.pk).deletion_requested_at is not None
    assert UsageEvent.objects.filter(feature=export).count() == 4
    for callback in queued:  # the task, run eagerly as a worker would
        callback()
    assert not Feature.objects.filter(pk=export.pk).exists() and _rows_of(org, [export.pk]) == {}
    assert not UsageEvent.objects.filter(organization=org).exists()
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == {D1, D2}
    assert UsageEvent.objects.filter(feature=theirs).count() == 1


def test_features_that_together_have_many_events_are_queued_too(org, monkeypatch):
    """The limit is on the request's whole delete, not on each feature: ten features just
    under it would add up past the statement timeout."""
    from telemetry.services import feature_deletion

    features = [feature(org, f"f{i}") for i in range(3)]
    person = end_user(org, "u1")
    for item in features:
        for second in (1, 2):
            event(org, item, person, at(str(D1), f"00:00:0{second}"))
    monkeypatch.setattr(feature_deletion, "INLINE_EVENTS", 3)
    sent = []
    monkeypatch.setattr(feature_deletion, "task_send_on_commit_or_later", lambda name, **kwargs: sent.append(kwargs))
    queued = feature_deletion.features_delete_or_queue(Feature.objects.filter(organization=org))
    assert queued == [features[1].pk, features[2].pk] and sent == [{"feature_ids": queued}]
    assert list(Feature.objects.filter(organization=org).values_list("key", flat=True)) == ["f1", "f2"]


def test_a_chunked_delete_stops_when_its_time_is_up_and_carries_on(org, two_features):
    from telemetry.services.feature_deletion import features_delete_in_chunks

    search, export = two_features
    # Chunks of one event: the first takes D1 00:00, both events of that timestamp.
    assert features_delete_in_chunks([export.pk], chunk_rows=1, seconds=0) is False
    assert UsageEvent.objects.filter(feature=export).count() == 2 and Feature.objects.filter(pk=export.pk).exists()
    assert Feature.objects.get(pk=export.pk).deletion_requested_at is not None  # renewed by the chunk
    assert features_delete_in_chunks([export.pk], chunk_rows=1) is True
    assert not Feature.objects.filter(pk=export.pk).exists() and _rows_of(org, [export.pk]) == {}
    assert UsageEvent.objects.filter(feature=search).count() == 1  # another feature's events stay
    # Run again for a feature gone meanwhile (a message delivered twice): nothing to do.
    assert features_delete_in_chunks([export.pk], chunk_rows=1) is True


def test_a_queued_deletion_whose_message_was_lost_is_sent_again(org, two_features, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from telemetry import tasks
    from telemetry.services import feature_deletion
    from usage_platform.celery import app

    _, export = two_features
    monkeypatch.setattr(feature_deletion, "INLINE_EVENTS", 3)
    # Its message is never sent: the test's transaction never commits (as a broker out of reach).
    assert feature_deletion.features_delete_or_queue(Feature.objects.filter(pk=export.pk)) == [export.pk]
    assert Feature.objects.filter(pk=export.pk).exists()
    assert tasks.features_deletions_resume() == 0  # within its lease
    Feature.objects.filter(pk=export.pk).update(
        deletion_requested_at=timezone.now() - feature_deletion.DELETION_LEASE - timedelta(seconds=1)
    )
    assert tasks.features_deletions_resume() == 1  # sent again, run eagerly here
    assert not Feature.objects.filter(pk=export.pk).exists() and _rows_of(org, [export.pk]) == {}
    assert app.conf.beat_schedule["feature-deletions-resume"]["task"] == "telemetry.features_deletions_resume"


def test_a_protected_feature_is_refused_before_any_event_goes(org, two_features, monkeypatch):
    from django.db.models import PROTECT, ProtectedError

    from analytics.models import DailyFeatureUsage
    from telemetry.services import feature_deletion

    _, export = two_features
    monkeypatch.setattr(feature_deletion, "INLINE_EVENTS", 3)
    monkeypatch.setattr(DailyFeatureUsage._meta.get_field("feature").remote_field, "on_delete", PROTECT)
    with pytest.raises(ProtectedError):
        feature_deletion.features_delete_or_queue(Feature.objects.filter(pk=export.pk))
    with pytest.raises(ProtectedError):
        feature_deletion.features_delete_in_chunks([export.pk], chunk_rows=1)
    assert UsageEvent.objects.filter(feature=export).count() == 4
    assert Feature.objects.get(pk=export.pk).deletion_requested_at is None


def test_the_delete_page_of_a_large_feature_says_it_is_queued(org, two_features, staff_client, monkeypatch):
    from telemetry.services import feature_deletion

    _, export = two_features
    monkeypatch.setattr(feature_deletion, "INLINE_EVENTS", 3)
    response = staff_client.post(f"/admin/telemetry/feature/{export.pk}/delete/", {"post": "yes"}, follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "deleted in the background" in page
    assert "was deleted successfully" not in page
