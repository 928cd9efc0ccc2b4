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
        indexes = [models.Index(fields=["organization", "end_user", "date"], name="duu_org_user_date_idx")]

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


class UserActiveDays(models.Model):
    """On which days of an 8-week block one end user was active: bit i of `active_days` is
    set when the user has a DailyUserUsage row on `block_start` + i days. Blocks start on a
    Monday (`analytics.active_days`), so a week never straddles two rows. Distinct active
    users over a range, weekly active users and retention read one row per user and block
    (a 90-day range: two or three) instead of one per active day; the bitmask keeps them
    exact. Kept by the rollup from the day's per-user rows (`active_days.rollup_active_days`).
    Written on every active day of its block: on PostgreSQL its pages are kept half empty
    (fillfactor 50, migration 0012) so those writes stay on the row's page and the dead
    versions they leave are reclaimed there."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    end_user = models.ForeignKey(
        "telemetry.EndUser", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    block_start = models.DateField()
    active_days = models.BigIntegerField(default=0)
    # The user's events in each week of the block (week k: days 7k..7k+6, Σ of their
    # DailyUserUsage rows): over the weeks a range touches, an upper bound of their events
    # in the range, exact for whole weeks, which lets the ranked reads (top users, the user
    # list by events) sum exact per-day rows only for the few users that can rank
    # (`queries.ranked`). Weeks, not the block: a bound over 56 days would carry a peak
    # day into every range of its block. Not positive fields: the rollup adds a day's
    # change, negative when events vanished, through an upsert whose proposed row carries
    # it (a CHECK refuses it before the conflict). Database defaults too: the bitmask
    # step's raw INSERT names only the day's week.
    events_w0 = models.IntegerField(default=0, db_default=0)
    events_w1 = models.IntegerField(default=0, db_default=0)
    events_w2 = models.IntegerField(default=0, db_default=0)
    events_w3 = models.IntegerField(default=0, db_default=0)
    events_w4 = models.IntegerField(default=0, db_default=0)
    events_w5 = models.IntegerField(default=0, db_default=0)
    events_w6 = models.IntegerField(default=0, db_default=0)
    events_w7 = models.IntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "end_user", "block_start"], name="uad_org_user_block_uniq")
        ]
        # A range's blocks of one organisation. `active_days` stays out of every index, so
        # the rollup's updates of it can be heap-only (HOT) on PostgreSQL.
        indexes = [models.Index(fields=["organization", "block_start"], name="uad_org_block_idx")]

    def __str__(self):
        return f"{self.end_user_id} {self.block_start}: {self.active_days:056b}"


class UserFeatureActiveDays(models.Model):
    """On which days of an 8-week block one end user used one feature: bit i of
    `active_days` is set when the user has a DailyUserFeatureUsage row of that feature on
    `block_start` + i days (blocks as UserActiveDays'). A feature's distinct users over a
    range (stickiness, the feature-scoped summary, breakdowns and filters) read one row per
    user, feature and block instead of one per active day, exactly. Kept by the rollup from
    the day's per-user feature rows (`active_days.rollup_feature_active_days`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    feature = models.ForeignKey("telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False)
    end_user = models.ForeignKey(
        "telemetry.EndUser", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    block_start = models.DateField()
    active_days = models.BigIntegerField(default=0)
    # Copies of `active_days` of this user and feature's rows one and two blocks earlier (0:
    # none), kept by the rollup: a user active in a range is then counted once, on the first
    # of its blocks they were active in (`queries.active.feature_users`), so a feature's
    # distinct users over up to three blocks are a COUNT, not a COUNT(DISTINCT) that sorts
    # every row (docs/decisions.md, 2026-12-01).
    earlier_days_1 = models.BigIntegerField(default=0, db_default=0)
    earlier_days_2 = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        # One index: a range's blocks of every feature (its prefix), of one feature, the
        # rollup's upsert target and its one-row probes for the copies, which must find this
        # index whatever the planner's estimates (`active_days._PROBED`). `active_days` stays
        # out of it so the rollup's updates of it can be heap-only (HOT) on PostgreSQL.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "block_start", "feature", "end_user"], name="ufad_org_block_feature_user_uniq"
            )
        ]

    def __str__(self):
        return f"{self.end_user_id} {self.feature_id} {self.block_start}: {self.active_days:056b}"


class DailyFeatureRecency(models.Model):
    """How long one feature's users of one day had been away from it: `absent_before[k]` is
    the number of its users active on `date` who had not used it on any of the k days before
    (k = 0 … `recency.RECENCY_DAYS`; k = 0 counts them all). A feature's distinct users over
    start..end (up to RECENCY_DAYS + 1 days) are then the sum over the range's days d of
    `absent_before[d - start]`: each user counted on their first day in the range, reading
    one row per feature and day instead of one per user (`queries.active.feature_users`).
    Built by the rollup from the per-feature bitmasks (`recency.recency_day_rebuild`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    feature = models.ForeignKey("telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    absent_before = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "date", "feature"], name="dfr_org_date_feature_uniq")
        ]

    def __str__(self):
        return f"{self.feature_id} {self.date}: {self.absent_before[:1]}"


class FeatureRecencyStale(models.Model):
    """A day whose DailyFeatureRecency rows an earlier day's re-roll changed (its users' last
    visit before it moved): reads over a range holding it count from the bitmasks until the
    rows are rebuilt (`recency.recency_stale_rebuild`, at the end of every rollup run)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "date"], name="frs_org_date_uniq")]

    def __str__(self):
        return f"{self.organization_id} {self.date}"


class UserEventTypeActiveDays(models.Model):
    """On which days of an 8-week block one end user sent events of one type: bit i of
    `active_days` is set when the user has an event of `event_type` on `block_start` + i
    days (blocks as UserActiveDays'). Distinct users per event type over a range or per week
    (the event-type breakdowns' users) read one row per user, type and block instead of the
    range's raw events, exactly, under the person filters; not under a feature filter (the
    rows span every feature). Kept by the rollup from the day's per-user groups of the
    dimension rollup (`active_days.rollup_event_type_active_days`). Written on every active
    day of its block: half-full pages on PostgreSQL, as UserActiveDays (migration 0015)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    end_user = models.ForeignKey(
        "telemetry.EndUser", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    event_type = models.CharField(max_length=64)
    block_start = models.DateField()
    active_days = models.BigIntegerField(default=0)

    class Meta:
        # One key serves a range's blocks of one organisation (the reads) and the rollup's
        # upsert; `active_days` stays out of it so its updates can be heap-only.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "block_start", "event_type", "end_user"], name="uetad_org_block_type_user_uniq"
            )
        ]

    def __str__(self):
        return f"{self.end_user_id} {self.event_type} {self.block_start}: {self.active_days:056b}"


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
    feature = models.ForeignKey(
        "telemetry.Feature", null=True, on_delete=models.CASCADE, related_name="+", db_index=False
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


class AccountFeatureActiveDays(models.Model):
    """On which days of an 8-week block (blocks as UserActiveDays') the users of one account
    used one feature, as the day's account rows say (DailyAccountUsage: each user's account
    as the day was rolled up): bit i is set when the account has a row of the feature on
    `block_start` + i days. The Accounts list counts each account's features used in its
    window from one row per account, feature and block instead of one per account, feature
    and day (4 weeks: a fourteenth of the rows). Kept by the rollup from the day's account
    rows (`rollup_accounts.account_feature_days_roll`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    account = models.ForeignKey("telemetry.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    feature = models.ForeignKey("telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False)
    block_start = models.DateField()
    active_days = models.BigIntegerField(default=0)

    class Meta:
        # A window's blocks of one organisation (its prefix), and the rollup's upsert target.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "block_start", "account", "feature"], name="afad_org_block_account_feature_uniq"
            )
        ]

    def __str__(self):
        return f"{self.account_id} {self.feature_id} {self.block_start}: {self.active_days:056b}"


class Segment(models.Model):
    """A named, saved filter set of an organisation (DESIGN "Accounts and segments"):
    `filters` holds query-string values ({"age": "<18", "user.plan": "pro", …}), validated
    like a query string when saved and again when used (a feature may have been deleted)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    filters = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="segment_org_name_uniq")]

    def __str__(self):
        return self.name


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
    # As DailySegmentUsage: "<18", "18-40", ">40" or "" (unknown age, or an anonymous event).
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
        ]

    def __str__(self):
        return f"{self.date} {self.feature_id} {self.dimension}={self.value}: {self.event_count}"
