"""One row of every model of every app for an organisation: what the admin tests list and
the organisation deletion tests delete (and keep, for another organisation)."""

from datetime import date, timedelta

from django.utils import timezone

from conftest import make_member
from tenants import services
from tenants.models import Role


def tenant_rows(admin_user):
    """One row of every model for this organisation."""
    from analytics.models import (
        AccountFeatureActiveDays,
        DailyAccountRecency,
        DailyAccountUsage,
        DailyDimensionUsage,
        DailyEventTypeRecency,
        DailyFeatureRecency,
        DailyFeatureSegmentRecency,
        DailyFeatureUsage,
        DailyOrgUsage,
        DailySegmentRecency,
        DailySegmentUsage,
        DailyUserFeatureUsage,
        DailyUserUsage,
        FeatureBit,
        FeatureRecencyStale,
        Segment,
        UserActiveDays,
        UserEventTypeActiveDays,
        UserFeatureActiveDays,
    )
    from insights.models import AlertFiring, AlertRule, Anomaly, Insight, Webhook, WebhookDelivery
    from telemetry.models import Account, DirtyDay, EndUser, Feature, UsageEvent

    org = admin_user.organization
    make_member(org, Role.ANALYST)
    services.api_key_create(org=org, name=f"{org.slug}-key", created_by=admin_user)
    services.invitation_create(org=org, email=f"invitee@{org.slug}.example", role=Role.MEMBER, invited_by=admin_user)
    feature = Feature.objects.create(organization=org, key=f"{org.slug}-search", name=f"{org.name} search")
    account = Account.objects.create(organization=org, external_id=f"{org.slug}-customer", name=f"{org.name} customer")
    end_user = EndUser.objects.create(
        organization=org, external_id=f"{org.slug}-u1", age=30, gender="F", account=account
    )
    UsageEvent.objects.create(
        organization=org, feature=feature, end_user=end_user, timestamp=timezone.now(), session_duration=12
    )
    DirtyDay.objects.create(organization=org, date=date.today() - timedelta(days=2))
    DailyFeatureUsage.objects.create(organization=org, feature=feature, date=date.today(), event_count=1)
    DailyOrgUsage.objects.create(organization=org, date=date.today(), event_count=1, active_users=1)
    Segment.objects.create(organization=org, name=f"{org.name} teens", filters={"age": "<18"})
    now = timezone.now()
    DailyUserUsage.objects.create(
        organization=org, end_user=end_user, date=date.today(), event_count=1, first_event_at=now, last_event_at=now
    )
    DailyUserFeatureUsage.objects.create(
        organization=org, end_user=end_user, feature=feature, date=date.today(), event_count=1
    )
    DailySegmentUsage.objects.create(
        organization=org, date=date.today(), age_band="18-40", gender="F", event_count=1, active_users=1
    )
    UserActiveDays.objects.create(organization=org, end_user=end_user, block_start=date(2025, 1, 6), active_days=5)
    FeatureBit.objects.create(organization=org, feature=feature, bit=0)
    UserFeatureActiveDays.objects.create(
        organization=org, feature=feature, end_user=end_user, block_start=date(2025, 1, 6), active_days=5
    )
    UserEventTypeActiveDays.objects.create(
        organization=org, event_type="interaction", end_user=end_user, block_start=date(2025, 1, 6), active_days=5
    )
    DailyAccountUsage.objects.create(
        organization=org, date=date.today(), account=account, event_count=1, active_users=1
    )
    AccountFeatureActiveDays.objects.create(
        organization=org, account=account, feature=feature, block_start=date(2025, 1, 6), active_days=5
    )
    DailyFeatureRecency.objects.create(organization=org, feature=feature, date=date.today(), absent_before=[1, 1])
    DailyFeatureSegmentRecency.objects.create(
        organization=org, feature=feature, date=date.today(), age_band="18-40", gender="F", gaps={"0": 1}
    )
    DailyAccountRecency.objects.create(
        organization=org, account=account, date=date.today(), gaps={str(feature.pk): {"0": 1}}
    )
    DailySegmentRecency.objects.create(organization=org, date=date.today(), age_band="18-40", gender="F", gaps={"0": 1})
    DailyEventTypeRecency.objects.create(organization=org, date=date.today(), event_type="click", gaps={"0": 1})
    FeatureRecencyStale.objects.create(organization=org, date=date.today())
    DailyDimensionUsage.objects.create(
        organization=org, date=date.today(), dimension="event_type", value="click", event_count=1
    )
    Anomaly.objects.create(
        organization=org, feature=feature, date=date.today(), detector="zscore", metric="event_count", value=9, score=4
    )
    Insight.objects.create(
        organization=org, period_start=date.today(), period_end=date.today(), source="heuristic", bullets=["x"]
    )
    webhook = Webhook.objects.create(
        organization=org, url=f"https://{org.slug}.example/hook", secret="s3cret-value", events=["anomaly.created"]
    )
    WebhookDelivery.objects.create(webhook=webhook, event="anomaly.created", payload={}, status_code=200)
    rule = AlertRule.objects.create(
        organization=org, name=f"{org.name} busy", kind="retention", params={"day": 7, "below": 10}
    )
    AlertFiring.objects.create(
        rule=rule, organization=org, day=date.today(), window_start=date.today(), value=5, threshold=10, message="m"
    )
