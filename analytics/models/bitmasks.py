"""Active-day bitmasks per end user, feature, event type and account, one row per 8-week
block (`analytics.active_days`), and the per-feature recency rows built from them
(`analytics.recency`)."""

from django.db import models


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
    # The features the user used in each week of the block (week k: `features_w<k>`), one
    # bit per feature (`FeatureBit`): the distinct users of a set of features over a range's
    # whole weeks read one row per user and block (`analytics.feature_masks`). Kept by the
    # rollup from the day's per-user feature rows; not in any index, as `active_days`.
    features_w0 = models.BigIntegerField(default=0, db_default=0)
    features_w1 = models.BigIntegerField(default=0, db_default=0)
    features_w2 = models.BigIntegerField(default=0, db_default=0)
    features_w3 = models.BigIntegerField(default=0, db_default=0)
    features_w4 = models.BigIntegerField(default=0, db_default=0)
    features_w5 = models.BigIntegerField(default=0, db_default=0)
    features_w6 = models.BigIntegerField(default=0, db_default=0)
    features_w7 = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        verbose_name = "user active days"
        verbose_name_plural = "users' active days"
        constraints = [
            models.UniqueConstraint(fields=["organization", "end_user", "block_start"], name="uad_org_user_block_uniq")
        ]
        # A range's blocks of one organisation. `active_days` stays out of every index, so
        # the rollup's updates of it can be heap-only (HOT) on PostgreSQL.
        indexes = [models.Index(fields=["organization", "block_start"], name="uad_org_block_idx")]

    def __str__(self):
        return f"{self.end_user_id} {self.block_start}: {self.active_days:056b}"


class FeatureBit(models.Model):
    """A feature's bit in the per-user weekly feature masks (`UserActiveDays.features_w*`):
    0..62, so that a mask is a positive BIGINT on PostgreSQL and SQLite alike. Given by the
    rollup before it rolls the feature's first day (`analytics.feature_masks`) and never
    reused: a deleted feature's row stays, without its feature, so old masks never name a
    new feature. An organisation's features past the 63rd get none."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    feature = models.OneToOneField(
        "telemetry.Feature", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    bit = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "bit"], name="featurebit_org_bit_uniq")]

    def __str__(self):
        return f"{self.feature_id}: bit {self.bit}"


class UserFeatureActiveDays(models.Model):
    """On which days of an 8-week block one end user used one feature: bit i of
    `active_days` is set when the user has a DailyUserFeatureUsage row of that feature on
    `block_start` + i days (blocks as UserActiveDays'). A feature's distinct users over a
    range (stickiness, the feature-scoped summary, breakdowns and filters) read one row per
    user, feature and block instead of one per active day, exactly. Kept by the rollup from
    the day's per-user feature rows (`active_days.rollup_feature_active_days`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    # No database constraint: deleting a feature would check this table, which no index
    # leads by feature, whole; its rows go first (telemetry.services.feature_deletion).
    feature = models.ForeignKey(
        "telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
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
        verbose_name = "user feature active days"
        verbose_name_plural = "users' active days per feature"
        # The unique key serves a range's blocks of every feature (its prefix), of one
        # feature, the rollup's upsert target and its one-row probes for the copies, which
        # must find a one-row index whatever the planner's estimates (`active_days._PROBED`).
        # The second index holds the same four columns led by the user: a few users' rows (an
        # account's, under the account filter) are index ranges rather than a scan of every
        # row of the blocks, and a probe through it still finds one row. `active_days` stays
        # out of both so the rollup's updates of it can be heap-only (HOT) on PostgreSQL.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "block_start", "feature", "end_user"], name="ufad_org_block_feature_user_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "end_user", "block_start", "feature"], name="ufad_org_user_block_idx")
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
    # No database constraint: deleting a feature would check this table, which no index
    # leads by feature, whole; its rows go first (telemetry.services.feature_deletion).
    feature = models.ForeignKey(
        "telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    date = models.DateField()
    absent_before = models.JSONField(default=list)

    class Meta:
        verbose_name = "daily feature recency"
        verbose_name_plural = "daily feature recency rows"
        constraints = [
            models.UniqueConstraint(fields=["organization", "date", "feature"], name="dfr_org_date_feature_uniq")
        ]

    def __str__(self):
        return f"{self.feature_id} {self.date}: {self.absent_before[:1]}"


class DailyFeatureSegmentRecency(models.Model):
    """DailyFeatureRecency per person segment, sparse: `gaps` maps a number of days k (as a
    string, JSON's keys) to the feature's users of `date` whose last use before it was k days
    earlier ("0": not within `recency.RECENCY_DAYS`), of those users whose age band and gender
    ("" when unknown) were `age_band` and `gender` when the day's rows were last built (its
    roll, or a rebuild after an earlier day's re-roll: docs/decisions.md, 2026-12-02).
    `absent_before[k]` is then the users less those of gaps 1 … k. A feature's distinct users
    under the age and gender filters over a range are summed from these rows
    (`recency.recency_feature_users`); a day's rows add up to its DailyFeatureRecency rows.
    Sparse because a segment's day has ~20 distinct gaps where the dense list holds 113
    numbers (322 against 1,364 bytes a row on the bench). Built and marked stale with
    DailyFeatureRecency (`recency.recency_day_rebuild`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    # No database constraint: deleting a feature would check this table, which no index
    # leads by feature, whole; its rows go first (telemetry.services.feature_deletion).
    feature = models.ForeignKey(
        "telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    date = models.DateField()
    age_band = models.CharField(max_length=5, blank=True)
    gender = models.CharField(max_length=1, blank=True)
    gaps = models.JSONField(default=dict)

    class Meta:
        verbose_name = "daily feature segment recency"
        verbose_name_plural = "daily feature segment recency rows"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "date", "feature", "age_band", "gender"], name="dfsr_org_date_feature_uniq"
            )
        ]

    def __str__(self):
        return f"{self.feature_id} {self.date} {self.age_band}/{self.gender}: {sum(self.gaps.values())}"


class DailyAccountRecency(models.Model):
    """DailyFeatureSegmentRecency's counterpart for the account filter, one row per account
    and day: `gaps` maps each feature's id (as a string) to its users' gaps {k: users}, of the
    users who were in `account` when the day's rows were last built (as the account rollups,
    DailyAccountUsage, count a user in the account they were in when the day was rolled up).
    Users without an account are in no row. A feature's distinct users of one account over
    a range (the Account page, `feature-usage?account=`) are summed from these rows
    (`recency.recency_feature_users`): one row per day, where the account's users'
    per-feature bitmasks are one per user, feature and block, read from every corner of the
    heap. One row per account and day rather than per feature too: 40 times fewer rows on
    the bench, whose row headers and index entries were most of the space (docs/decisions.md,
    2026-12-03). Built and marked stale with DailyFeatureRecency (`recency.recency_day_rebuild`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    account = models.ForeignKey("telemetry.Account", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    gaps = models.JSONField(default=dict)

    class Meta:
        verbose_name = "daily account recency"
        verbose_name_plural = "daily account recency rows"
        constraints = [
            # An account's range: one index range (the reads).
            models.UniqueConstraint(fields=["organization", "account", "date"], name="dar_org_account_date_uniq")
        ]
        # A day's rows: replaced whole by its rebuild.
        indexes = [models.Index(fields=["organization", "date"], name="dar_org_date_idx")]

    def __str__(self):
        return f"account {self.account_id} {self.date}: {len(self.gaps)} features"


class DailySegmentRecency(models.Model):
    """DailyFeatureSegmentRecency for all features together, one row per person segment and
    day: `gaps` maps a number of days k (as a string) to the segment's users active on `date`
    whose previous active day, any feature, was k days earlier ("0": not within
    `recency.RECENCY_DAYS`), the segment being the user's age band and gender when the day's
    rows were last built. Distinct active users per age band or gender over a range, and per
    week (the person breakdowns, `recency_segments`), are summed from these rows: a day
    holds at most 16, where the active-day bitmasks hold one per user and block, each joined
    to its user's profile. Built from UserActiveDays with the other recency rows of the day
    and marked stale with them (`recency.recency_day_rebuild`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    age_band = models.CharField(max_length=5, blank=True)
    gender = models.CharField(max_length=1, blank=True)
    gaps = models.JSONField(default=dict)

    class Meta:
        verbose_name = "daily segment recency"
        verbose_name_plural = "daily segment recency rows"
        constraints = [
            models.UniqueConstraint(fields=["organization", "date", "age_band", "gender"], name="dsr_org_date_uniq")
        ]

    def __str__(self):
        return f"{self.date} {self.age_band}/{self.gender}: {sum(self.gaps.values())}"


class DailyEventTypeRecency(models.Model):
    """DailyFeatureRecency per event type, sparse: `gaps` maps a number of days k (as a
    string) to the users who sent events of `event_type` on `date` and last sent one k days
    earlier ("0": not within `recency.RECENCY_DAYS`). Distinct users per event type over a
    range and per week (the event-type breakdowns' users, unfiltered) are summed from these
    rows (`recency_segments`): one row per type and day, where the per-event-type bitmasks
    hold one per user, type and block. Built from UserEventTypeActiveDays with the day's
    other recency rows and marked stale with them (`recency.recency_day_rebuild`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()
    event_type = models.CharField(max_length=64)
    gaps = models.JSONField(default=dict)

    class Meta:
        verbose_name = "daily event type recency"
        verbose_name_plural = "daily event type recency rows"
        constraints = [
            models.UniqueConstraint(fields=["organization", "date", "event_type"], name="detr_org_date_type_uniq")
        ]

    def __str__(self):
        return f"{self.date} {self.event_type}: {sum(self.gaps.values())}"


class FeatureRecencyStale(models.Model):
    """A day whose DailyFeatureRecency rows an earlier day's re-roll changed (its users' last
    visit before it moved): reads over a range holding it count from the bitmasks until the
    rows are rebuilt (`recency.recency_stale_rebuild`, at the end of every rollup run)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False)
    date = models.DateField()

    class Meta:
        verbose_name = "stale feature recency day"
        verbose_name_plural = "stale feature recency days"
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
        verbose_name = "user event type active days"
        verbose_name_plural = "users' active days per event type"
        # One key serves a range's blocks of one organisation (the reads) and the rollup's
        # upsert; `active_days` stays out of it so its updates can be heap-only.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "block_start", "event_type", "end_user"], name="uetad_org_block_type_user_uniq"
            )
        ]

    def __str__(self):
        return f"{self.end_user_id} {self.event_type} {self.block_start}: {self.active_days:056b}"


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
    # No database constraint: deleting a feature would check this table, which no index
    # leads by feature, whole; its rows go first (telemetry.services.feature_deletion).
    feature = models.ForeignKey(
        "telemetry.Feature", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    block_start = models.DateField()
    active_days = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "account feature active days"
        verbose_name_plural = "accounts' active days per feature"
        # A window's blocks of one organisation (its prefix), and the rollup's upsert target.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "block_start", "account", "feature"], name="afad_org_block_account_feature_uniq"
            )
        ]

    def __str__(self):
        return f"{self.account_id} {self.feature_id} {self.block_start}: {self.active_days:056b}"
