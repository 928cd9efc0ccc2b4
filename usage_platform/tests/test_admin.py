"""The Django admin of every app: platform staff see every tenant's rows in every model; org
users, even org admins, do not get in."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from conftest import PASSWORD, make_member, make_org
from tenants.models import ApiKey, Invitation, Organization, Role, User

from .tenant_rows import tenant_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_tenants(db):
    a, b = make_org("Admin Acme"), make_org("Admin Globex")
    tenant_rows(a)
    tenant_rows(b)
    return a.organization, b.organization


@pytest.fixture
def staff_client(client, db):
    staff = User.objects.create_superuser(email="root@platform.example", password=PASSWORD)
    client.force_login(staff)
    return client


def _models():
    return [
        model
        for model in admin.site._registry
        if model._meta.app_label in {"tenants", "telemetry", "analytics", "insights"}
    ]


def test_every_model_of_every_app_is_registered():
    from django.apps import apps

    registered = set(admin.site._registry)
    for label in ("tenants", "telemetry", "analytics", "insights"):
        for model in apps.get_app_config(label).get_models():
            if model._meta.is_composite_pk:
                continue  # Django's admin refuses them (telemetry.EventUuid, internal dedupe rows)
            assert model in registered, f"{model.__name__} has no admin"


def test_superuser_sees_every_tenant_in_every_changelist(staff_client, two_tenants, django_assert_max_num_queries):
    for model in _models():
        model_admin = admin.site._registry[model]
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        # list_select_related keeps each list to a handful of queries whatever its length.
        with django_assert_max_num_queries(15):
            response = staff_client.get(url)
        assert response.status_code == 200, url
        rows = response.context["cl"].result_list
        orgs = set()
        for row in rows:
            if model is Organization:
                orgs.add(row.pk)
                continue
            org = getattr(row, "organization", None) or getattr(getattr(row, "webhook", None), "organization", None)
            if org is not None:
                orgs.add(org.pk)
        assert {o.pk for o in two_tenants} <= orgs, f"{model.__name__}: {orgs}"
        assert model_admin.search_fields, f"{model.__name__} has no search"
        assert model_admin.list_filter, f"{model.__name__} has no filters"
        search = staff_client.get(url, {"q": "acme"})
        assert search.status_code == 200, url


def test_every_change_page_opens(staff_client, two_tenants):
    for model in _models():
        obj = model._default_manager.first()
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[obj.pk])
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert b"s3cret-value" not in response.content


def test_every_filter_option_works(staff_client, two_tenants):
    for model in _models():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        response = staff_client.get(url)
        for spec in response.context["cl"].filter_specs:
            # "All" plus the first real choice of each filter: every filter's queryset runs.
            for choice in list(spec.choices(response.context["cl"]))[1:2]:
                query = choice["query_string"]
                assert staff_client.get(url + query).status_code == 200, f"{url}{query}"


def test_add_pages_open_where_adding_makes_sense(staff_client, rf):
    request = rf.get("/admin/")
    request.user = User.objects.get(email="root@platform.example")
    for model in _models():
        model_admin = admin.site._registry[model]
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        expected = 200 if model_admin.has_add_permission(request) else 403
        assert staff_client.get(url).status_code == expected, url


def test_create_user_in_an_organisation(staff_client, two_tenants):
    org = two_tenants[0]
    response = staff_client.post(
        reverse("admin:tenants_user_add"),
        {
            "email": "New.Person@Acme.example",
            "organization": org.pk,
            "role": "analyst",
            "usable_password": "true",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 302, response.context["adminform"].errors if response.context else response
    user = User.objects.get(email__iexact="new.person@acme.example")
    assert user.organization == org and user.role == "analyst" and user.check_password(PASSWORD)


def test_revoke_keys_action(staff_client, two_tenants):
    response = staff_client.post(
        reverse("admin:tenants_apikey_changelist"),
        {"action": "revoke", "_selected_action": list(ApiKey.objects.values_list("pk", flat=True))},
    )
    assert response.status_code == 302
    assert not ApiKey.objects.filter(revoked_at__isnull=True).exists()


def test_withdraw_invitations_action(staff_client, two_tenants):
    staff_client.post(
        reverse("admin:tenants_invitation_changelist"),
        {"action": "revoke", "_selected_action": list(Invitation.objects.values_list("pk", flat=True))},
    )
    assert all(i.status == "revoked" for i in Invitation.objects.all())


def test_org_admin_is_not_platform_staff(client, admin_user):
    client.force_login(admin_user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_computed_and_received_rows_are_read_only(staff_client, two_tenants):
    """Rollups, raw events, late-data marks, anomalies, narratives and webhook deliveries come
    from ingestion, the rollup, the detectors and the outbound queue: the admin shows them but
    offers no Add, no Save and no Delete."""
    from analytics.models import (
        AccountFeatureActiveDays,
        DailyAccountUsage,
        DailyDimensionUsage,
        DailyEventTypeRecency,
        DailyFeatureRecency,
        DailyFeatureSegmentRecency,
        DailyFeatureUsage,
        DailyOrgUsage,
        DailySegmentRecency,
        FeatureRecencyStale,
        UserActiveDays,
        UserEventTypeActiveDays,
        UserFeatureActiveDays,
    )
    from insights.models import Anomaly, Insight, WebhookDelivery
    from telemetry.models import DirtyDay, UsageEvent

    computed = (
        AccountFeatureActiveDays,
        DailyFeatureUsage,
        DailyOrgUsage,
        DailyAccountUsage,
        DailyDimensionUsage,
        DailyEventTypeRecency,
        DailyFeatureRecency,
        DailyFeatureSegmentRecency,
        DailySegmentRecency,
        FeatureRecencyStale,
        UserActiveDays,
        UserEventTypeActiveDays,
        UserFeatureActiveDays,
    )
    for model in (*computed, UsageEvent, DirtyDay, Anomaly, Insight, WebhookDelivery):
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        obj = model._default_manager.first()
        changelist = staff_client.get(reverse(f"{prefix}_changelist"))
        assert changelist.status_code == 200
        assert reverse(f"{prefix}_add").encode() not in changelist.content, model.__name__
        assert staff_client.get(reverse(f"{prefix}_add")).status_code == 403, model.__name__
        change = staff_client.get(reverse(f"{prefix}_change", args=[obj.pk]))
        assert change.status_code == 200 and b'name="_save"' not in change.content, model.__name__
        assert staff_client.post(reverse(f"{prefix}_change", args=[obj.pk]), {}).status_code == 403
        assert staff_client.post(reverse(f"{prefix}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
        assert model._default_manager.filter(pk=obj.pk).exists()


def _large_table_admins():
    from core.admin_read_only import LargeTableAdmin

    return [(model, ma) for model, ma in admin.site._registry.items() if isinstance(ma, LargeTableAdmin)]


def test_tables_that_grow_with_events_have_bounded_change_lists():
    from analytics.models import DailyDimensionUsage, DailyUserFeatureUsage, DailyUserUsage, UserFeatureActiveDays
    from telemetry.models import UsageEvent

    large = {model for model, _ in _large_table_admins()}
    assert {UsageEvent, DailyUserUsage, DailyUserFeatureUsage, UserFeatureActiveDays, DailyDimensionUsage} <= large


def test_a_large_tables_change_list_never_scans_it(staff_client, two_tenants):
    """Each statement on the table is bounded (LIMIT) and reads no distinct values: no full
    count, no date drill-down, no filter listing a column's values, newest first by id."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for model, _ in _large_table_admins():
        table = model._meta.db_table
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(url).status_code == 200, url
        on_table = [q["sql"] for q in ctx.captured_queries if f'FROM "{table}"' in q["sql"]]
        assert on_table, url
        assert not [sql for sql in on_table if "DISTINCT" in sql], url
        counts = [sql for sql in on_table if "COUNT(" in sql]
        assert counts and all("LIMIT" in sql for sql in counts), counts
        # A page of rows along the primary key (a single page here: Django drops the LIMIT).
        listing = [sql for sql in on_table if "COUNT(" not in sql]
        assert listing and all(sql.endswith(f'ORDER BY "{table}"."id" DESC') for sql in listing), listing


def test_a_large_tables_change_list_offers_no_facet_counts(staff_client, two_tenants):
    """ "Show counts" (`?_facets`) counted each filter choice over the whole table, unbounded."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for model, _ in _large_table_admins():
        table = model._meta.db_table
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert "_facets" not in staff_client.get(url).content.decode(), url
        with CaptureQueriesContext(connection) as ctx:
            assert staff_client.get(f"{url}?_facets=True").status_code == 200, url
        counts = [q["sql"] for q in ctx.captured_queries if f'FROM "{table}"' in q["sql"] and "COUNT(" in q["sql"]]
        assert counts and all("LIMIT" in sql for sql in counts), counts


def test_the_count_of_a_large_change_list_stops_at_the_cap(staff_client, two_tenants, monkeypatch):
    from core import admin_read_only
    from telemetry.models import EndUser, Feature, UsageEvent

    org = two_tenants[0]
    feature, user = Feature.objects.get(organization=org), EndUser.objects.get(organization=org)
    for _ in range(3):
        UsageEvent.objects.create(organization=org, feature=feature, end_user=user, timestamp=timezone.now())
    monkeypatch.setattr(admin_read_only, "COUNT_CAP", 2)
    response = staff_client.get(reverse("admin:telemetry_usageevent_changelist"))
    assert response.context["cl"].result_count == 2
    assert "2+ usage events (narrow with the filters to see older rows)" in response.content.decode()
    monkeypatch.setattr(admin_read_only, "COUNT_CAP", 100)
    response = staff_client.get(reverse("admin:telemetry_usageevent_changelist"))
    assert "5 usage events" in response.content.decode() and "+ usage events" not in response.content.decode()


@pytest.mark.parametrize("term", ["end_user", "uuid", "feature"])
def test_events_are_found_by_exact_id_within_their_tenant(staff_client, two_tenants, term):
    from telemetry.models import UsageEvent

    org = two_tenants[0]
    event = UsageEvent.objects.select_related("end_user", "feature").get(organization=org)
    q = {"end_user": event.end_user.external_id, "uuid": str(event.uuid), "feature": event.feature.key}[term]
    response = staff_client.get(reverse("admin:telemetry_usageevent_changelist"), {"q": q})
    assert [row.pk for row in response.context["cl"].result_list] == [event.pk]
    assert staff_client.get(reverse("admin:telemetry_usageevent_changelist"), {"q": "no such id"}).status_code == 200


def test_an_organisations_last_admin_cannot_be_demoted_deactivated_moved_or_deleted(staff_client, two_tenants):
    """QA pass 3, F3: the admin's forms bypassed the rule the API and the Settings pages keep."""
    lone = make_org("Lone Admin Co")
    url = reverse("admin:tenants_user_change", args=[lone.pk])
    kept = {"email": lone.email, "full_name": "", "organization": lone.organization_id, "role": "admin"}
    for change in ({"role": "member"}, {"is_active": None}, {"organization": two_tenants[1].pk}):
        body = {**kept, "is_active": "on", **change}
        response = staff_client.post(url, {k: v for k, v in body.items() if v is not None})
        assert response.status_code == 200, change
        assert "last active admin of Lone Admin Co" in response.content.decode()
    lone.refresh_from_db()
    assert (lone.role, lone.is_active, lone.organization.name) == ("admin", True, "Lone Admin Co")
    staff_client.post(reverse("admin:tenants_user_delete", args=[lone.pk]), {"post": "yes"})
    staff_client.post(
        reverse("admin:tenants_user_changelist"),
        {"action": "delete_selected", "_selected_action": [lone.pk], "post": "yes"},
    )
    assert User.objects.filter(pk=lone.pk).exists()
    # With another admin there, the change goes through.
    make_member(lone.organization, Role.ADMIN)
    response = staff_client.post(url, {**kept, "is_active": "on", "role": "member"})
    assert response.status_code == 302
    assert User.objects.get(pk=lone.pk).role == "member"


def test_deleting_an_end_user_erases_their_events_and_rollups_and_rerolls_their_days(staff_client, two_tenants):
    """QA pass 3, F13: the admin offered Delete on an end user with data, then refused it (no
    permission on the read-only rollup tables): a person's erasure request had no way through."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from analytics import rollup
    from analytics.models import (
        DailyOrgUsage,
        DailyUserFeatureUsage,
        DailyUserUsage,
        UserActiveDays,
        UserEventTypeActiveDays,
        UserFeatureActiveDays,
    )
    from analytics.tests.factories import at, end_user, event, feature
    from core.days import today
    from telemetry.models import DirtyDay, EndUser, UsageEvent

    org = two_tenants[0]
    search = feature(org, "erase-search")
    gone, kept = end_user(org, "forget-me"), end_user(org, "stay")
    days = [today() - timedelta(days=n) for n in (3, 2)]
    for day in days:
        event(org, search, gone, at(day.isoformat(), "09:00:00"))
        event(org, search, kept, at(day.isoformat(), "10:00:00"))
    rollup.rollup_range(days[0], days[-1], org)
    assert DailyUserUsage.objects.filter(end_user=gone).exists()

    page = staff_client.get(reverse("admin:telemetry_enduser_delete", args=[gone.pk]))
    assert page.status_code == 200 and "their events and per-user rollups go too" in page.content.decode()
    with CaptureQueriesContext(connection) as queries:
        staff_client.post(reverse("admin:telemetry_enduser_delete", args=[gone.pk]), {"post": "yes"})

    assert not EndUser.objects.filter(pk=gone.pk).exists()
    assert not UsageEvent.objects.filter(end_user_id=gone.pk).exists()
    assert UsageEvent.objects.filter(end_user=kept).count() == 2
    per_user = (DailyUserUsage, DailyUserFeatureUsage, UserActiveDays, UserFeatureActiveDays, UserEventTypeActiveDays)
    for model in per_user:
        assert not model.objects.filter(end_user_id=gone.pk).exists(), model.__name__
        assert model.objects.filter(end_user_id=kept.pk).exists(), model.__name__
    # Every write to the tables led by the organisation names it: a condition on the end user
    # alone reads them whole (3.6 s for one person at 10 M events).
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith(("DELETE", "UPDATE"))
        and ("analytics_" in q["sql"] or "telemetry_usageevent" in q["sql"])
    ]
    assert writes and all("organization_id" in sql for sql in writes), writes
    assert set(DirtyDay.objects.filter(organization=org).values_list("date", flat=True)) == set(days)
    rollup.rollup_dirty()
    assert [row.event_count for row in DailyOrgUsage.objects.filter(organization=org, date__in=days)] == [1, 1]


def test_staff_delete_an_organisation_or_a_feature_with_its_events_and_rollups(
    staff_client, two_tenants, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    """The delete pages listed every event and rollup row, then refused them ("your account
    doesn't have permission to delete … usage event, daily org usage, …"): 17 s on a demo
    organisation, and no organisation that had ever received an event could be deleted."""
    from analytics.models import DailyFeatureUsage, DailyOrgUsage
    from telemetry.models import Feature, UsageEvent

    gone, kept = two_tenants
    feature = Feature.objects.get(organization=kept)
    url = reverse("admin:telemetry_feature_delete", args=[feature.pk])
    with django_assert_max_num_queries(40):  # one bounded query per kind of row, none per row
        page = staff_client.get(url).content.decode()
    assert "Are you sure" in page and "usage events" in page and "permission" not in page
    assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Feature.objects.filter(pk=feature.pk).exists()
    assert not UsageEvent.objects.filter(organization=kept).exists()
    assert not DailyFeatureUsage.objects.filter(organization=kept).exists()

    url = reverse("admin:tenants_organization_delete", args=[gone.pk])
    page = staff_client.get(url).content.decode()
    assert "Are you sure" in page and "daily org usages" in page and "permission" not in page
    # The organisation's rows go in a task sent once the request commits (eager here).
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.post(url, {"post": "yes"}).status_code == 302
    assert not Organization.objects.filter(pk=gone.pk).exists()
    assert not UsageEvent.objects.filter(organization_id=gone.pk).exists()
    assert not DailyOrgUsage.objects.filter(organization_id=gone.pk).exists()
    assert Organization.objects.filter(pk=kept.pk).exists() and DailyOrgUsage.objects.filter(organization=kept).exists()
