"""The daily rollups: per organisation, feature, end user, person segment, account and
breakdown dimension, one row per day (`analytics.rollup` builds them from raw events)."""

from django.db import models
from django.utils import timezone


class DailyFeatureUsage(models.Model):
    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    feature = models.ForeignKey("telemetry.Feature", on_delete=models.CASCADE, related_name="daily_usage")
    date = models.DateField()
    event_count = models.PositiveIntegerField(default=0)
    daily_active_users = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    total_session_duration = models.FloatField(default=0)
    avg_session_duration = models.FloatField(default=0)
    # Events that carried a session_duration: the divisor that lets averages over several
    # days (or features) be rebuilt exactly from the daily rows.
    timed_events = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "feature", "date"], name="dfu_org_feature_date_uniq")
        ]
        indexes = [models.Index(fields=["organization", "date"], name="dfu_org_date_idx")]

    def __str__(self):
        return f"{self.feature_id} {self.date}: {self.event_count}"


class DailyOrgUsage(models.Model):
    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    event_count = models.PositiveIntegerField(default=0)
    active_users = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    avg_session_duration = models.FloatField(default=0)
    total_session_duration = models.FloatField(default=0)
    timed_events = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["organization", "date"], name="dou_org_date_uniq")]

    def __str__(self):
        return f"{self.organization_id} {self.date}: {self.event_count}"


class DailyUserUsage(models.Model):
    """One end user's activity on one UTC day, rolled up from raw events by the same job as
    the rows above, so user lists, top users, distinct active users over any range,
    retention and the demographic filters never scan events. Age, gender and account are
    read through `end_user` at query time (not copied here): a profile update then applies
    to history at once, as it does for raw events, without re-rolling any day.

    No foreign key here is a database constraint: the rows are written only by the rollup,
    from events of the organisation's own features, and a deferred check per row and key
    cost as much as the insert itself (docs/decisions.md, 2026-12-01); deletes cascade
    through Django's collector."""

    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    end_user = models.ForeignKey(
        "telemetry.EndUser", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    date = models.DateField()
    event_count = models.PositiveIntegerField(default=0)
    # Distinct session ids of this user on this day (events without one are not a session).
    sessions = models.PositiveIntegerField(default=0)
    total_session_duration = models.FloatField(default=0)
    timed_events = models.PositiveIntegerField(default=0)
    features_used = models.PositiveIntegerField(default=0)
    first_event_at = models.DateTimeField()
    last_event_at = models.DateTimeField()
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "date", "end_user"], name="duu_org_date_user_uniq")
        ]
        # One user's days are one index range, and it carries the figures (PostgreSQL INCLUDE;
        # ignored by SQLite): the reads of a set of users' days (an account's or a segment's
        # people, the ranked reads' edge days and winners) are index-only scans, where each
        # user's day rows lie on as many heap pages as days (docs/decisions.md, 2026-12-03).
        indexes = [
            models.Index(
                fields=["organization", "end_user", "date"],
                include=[
                    "event_count",
                    "sessions",
                    "total_session_duration",
                    "timed_events",
                    "first_event_at",
                    "last_event_at",
                ],
                name="duu_org_user_figures_idx",
            )
        ]

    def __str__(self):
        return f"{self.end_user_id} {self.date}: {self.event_count}"


class DailyUserFeatureUsage(models.Model):
    """One end user's use of one feature on one UTC day: answers the feature-scoped
    distinct-user figures (a feature's active users over a range or per week), each user's
    top feature, and the per-feature person segments (DailySegmentUsage)."""

    # No database constraints, as DailyUserUsage's.
    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    feature = models.ForeignKey(
        "telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    end_user = models.ForeignKey(
        "telemetry.EndUser", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    date = models.DateField()
    event_count = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    total_session_duration = models.FloatField(default=0)
    timed_events = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "feature", "date", "end_user"], name="dufu_org_feature_date_user_uniq"
            )
        ]
        # (organization, date): the rollup's stale-row deletion and segments of one day; the
        # unique key serves one feature's range; (organization, end_user, date) one user's.
        indexes = [
            models.Index(fields=["organization", "end_user", "date"], name="dufu_org_user_date_idx"),
            models.Index(fields=["organization", "date"], name="dufu_org_date_idx"),
        ]

    def __str__(self):
        return f"{self.end_user_id} {self.feature_id} {self.date}: {self.event_count}"


class DailySegmentUsage(models.Model):
    """One day's usage per person segment (age band × gender), for all features (`feature`
    NULL) and per feature: what the person filters sum over a range without touching a
    per-user row. Built by the rollup from the day's per-user rows and each end user's
    profile as it is then; active users add up across segments (each user is in one)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    feature = models.ForeignKey("telemetry.Feature", null=True, on_delete=models.CASCADE, related_name="+")
    # "<18", "18-40", ">40", or "" when the end user's age is unknown.
    age_band = models.CharField(max_length=5, blank=True)
    gender = models.CharField(max_length=1, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    active_users = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    total_session_duration = models.FloatField(default=0)
    timed_events = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "date"], name="dsu_org_date_idx")]

    def __str__(self):
        return f"{self.date} {self.feature_id} {self.age_band}/{self.gender}: {self.event_count}"


class DailyAccountUsage(models.Model):
    """One day's usage per account (the tenant's customer company; `account` NULL: the end
    users without one), for all features (`feature` NULL) and per feature: what the account
    filter and the account breakdown sum over a range without touching a per-user row, and
    the Accounts pages' trends. Built by the rollup from the day's per-user rows and each
    end user's account as it is then (as DailySegmentUsage is from their profile); active
    users add up across accounts (each user is in one at a time)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    # No database constraint: deleting a feature would check this table, which no index
    # leads by feature, whole; its rows go first (telemetry.services.feature_deletion).
    feature = models.ForeignKey(
        "telemetry.Feature", null=True, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    # A deleted account's users lose it (EndUser.account is SET_NULL): so do its rows.
    account = models.ForeignKey(
        "telemetry.Account", null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    event_count = models.PositiveIntegerField(default=0)
    active_users = models.PositiveIntegerField(default=0)
    sessions = models.PositiveIntegerField(default=0)
    total_session_duration = models.FloatField(default=0)
    timed_events = models.PositiveIntegerField(default=0)
    # The last event of the account's users that day, on the all-features rows (NULL on the
    # per-feature ones): the Accounts list's and page's "last seen" from a few rows per
    # account, as its events are.
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # (organization, date): per-feature breakdowns over a range and the rollup's day
        # replacement; the same for the all-features rows alone (the account breakdown and
        # the Accounts list read only those, a thirtieth of the rows); (organization,
        # account, date): one account's range (the filter, its trend).
        indexes = [
            models.Index(fields=["organization", "date"], name="dau_org_date_idx"),
            models.Index(
                fields=["organization", "date"], name="dau_org_date_all_idx", condition=models.Q(feature__isnull=True)
            ),
            models.Index(fields=["organization", "account", "date"], name="dau_org_account_date_idx"),
        ]

    def __str__(self):
        return f"{self.date} {self.feature_id} account {self.account_id}: {self.event_count}"


class DailyDimensionUsage(models.Model):
    """One day's usage per value of a breakdown dimension — `event_type`, `event.<name>` (an
    event property) or `user.<name>` (an end-user property, from the profile at rollup time,
    as the person segments take age and gender) — per person segment (age band × gender),
    for all features (`feature` NULL) and per feature: what the event-count breakdowns read
    instead of raw events (analytics.rollup_dimensions builds it and documents the caps).
    `value` is "(none)" where the event or profile lacks the property, "" for the values
    folded together past the per-day cap (shown as "other"). Active users are distinct per
    row, on the all-features rows, and on the per-feature rows of user properties; the
    per-feature rows of event dimensions leave them 0 (that would cost a per-user pass per
    feature; a feature's users per event value are read from raw events)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    feature = models.ForeignKey("telemetry.Feature", null=True, on_delete=models.CASCADE, related_name="+")
    dimension = models.CharField(max_length=120)
    value = models.TextField(blank=True)
    # As DailySegmentUsage: "<18", "18-40", ">40" or "" (unknown age, or an anonymous event);
    # both "*" (rollup_dimensions_sql.ALL_SEGMENTS) on each row summed over the segments, which
    # the reads without an age or gender filter take.
    age_band = models.CharField(max_length=5, blank=True)
    gender = models.CharField(max_length=1, blank=True)
    event_count = models.PositiveIntegerField(default=0)
    active_users = models.PositiveIntegerField(default=0)
    # Sessions per day and end user (as the per-user rollups count them), on the rows of user
    # properties, so a user-property filter's summary reads this table; 0 on event dimensions
    # (a session spans values there). NULL on rows rolled up before the column existed: the
    # queries fall back to the per-user rows for a range holding one.
    sessions = models.PositiveIntegerField(null=True)
    total_session_duration = models.FloatField(default=0)
    timed_events = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # One dimension's rows of all features (feature NULL) or one feature over a range.
            models.Index(fields=["organization", "dimension", "feature", "date"], name="ddu_org_dim_feature_date_idx"),
            # The rollup replaces a day whole.
            models.Index(fields=["organization", "date"], name="ddu_org_date_idx"),
            # The rows summed over the segments alone (~10 % of the rows): the reads without an
            # age or gender filter visit no segment row.
            models.Index(
                fields=["organization", "dimension", "feature", "date"],
                name="ddu_all_segments_idx",
                condition=models.Q(age_band="*"),
            ),
        ]

    def __str__(self):
        return f"{self.date} {self.feature_id} {self.dimension}={self.value}: {self.event_count}"
