import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from core.text import hidden_character_error


class Feature(models.Model):
    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="features")
    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # Set when a worker is to delete the feature (it has many events), renewed by each chunk
    # it deletes (telemetry.services.feature_deletion).
    deletion_requested_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["organization", "key"], name="feature_org_key_uniq")]

    def __str__(self):
        return self.name or self.key

    def clean(self):
        # The admin's form runs this; ingestion checks the same rule per item.
        errors = {}
        for field in ("key", "name"):
            if message := hidden_character_error(getattr(self, field)):
                errors[field] = message
        if errors:
            raise ValidationError(errors)


class Account(models.Model):
    """The tenant's customer company: end users belong to at most one, set by `account_id` on
    an event or identify, or by a group call (PostHog `$groupidentify`/`$groups`, Segment
    `group`). Known by the tenant's own id (`external_id`)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="accounts")
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="account_org_external_uniq")
        ]

    def __str__(self):
        return self.name or self.external_id


# What events and analytics filters may say for a gender (in any case), as EndUser stores it.
GENDER_CODES = {"f": "F", "female": "F", "m": "M", "male": "M", "o": "O", "other": "O"}


class EndUser(models.Model):
    """A user of the tenant's product, known by the tenant's own id (`external_id`)."""

    class Gender(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "O", "Other"

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="end_users")
    external_id = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    gender = models.CharField(max_length=1, choices=Gender.choices, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    # The tenant's customer company this person belongs to (a group call, `account_id`).
    account = models.ForeignKey(
        Account, null=True, blank=True, on_delete=models.SET_NULL, related_name="end_users", db_index=False
    )
    # The platform member whose own profile this is: members send events as themselves.
    member = models.ForeignKey(
        "tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="end_user_profiles"
    )
    first_seen = models.DateTimeField(null=True, blank=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="enduser_org_external_uniq")
        ]
        indexes = [
            models.Index(fields=["account"], name="enduser_account_idx", condition=models.Q(account__isnull=False))
        ]

    def __str__(self):
        return self.external_id

    @staticmethod
    def gender_code(value) -> str | None:
        """The stored code ("F", "M" or "O") for `value` ("f", "Female", "MALE", …); None for
        anything else, a non-string included."""
        return GENDER_CODES.get(value.lower()) if isinstance(value, str) else None


class UsageEvent(models.Model):
    """One feature-usage event. The hot table: exactly the four indexes below, no others
    (the FK columns are covered by the composite indexes, so their own indexes are off).

    Its foreign keys are not database constraints: three FK checks per row cost ~40 % of
    PostgreSQL's COPY rate on this table (docs/decisions.md). Ingestion resolves every id
    inside the caller's organisation before writing, the stream consumer re-checks what may
    have been deleted while queued, and deletes still cascade through Django's collector.

    On PostgreSQL the table is partitioned by month of `timestamp` (migration 0005,
    `telemetry.services.partitions`): the primary key is `(id, timestamp)` there, and the
    uuid key is `(organization, uuid, timestamp)` (a partitioned table's unique keys must
    hold the partition key), with `EventUuid` remembering recent uuids whatever their
    timestamp. A new unique constraint without `timestamp` cannot be added on PostgreSQL."""

    uuid = models.UUIDField(default=uuid.uuid4)
    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    feature = models.ForeignKey(
        Feature, on_delete=models.CASCADE, related_name="events", db_index=False, db_constraint=False
    )
    end_user = models.ForeignKey(
        EndUser,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
        db_index=False,
        db_constraint=False,
    )
    event_type = models.CharField(max_length=64, default="interaction")
    session_id = models.CharField(max_length=128, blank=True, default="")
    session_duration = models.FloatField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "uuid"], name="event_org_uuid_uniq")]
        indexes = [
            models.Index(fields=["organization", "timestamp"], name="event_org_ts_idx"),
            # `end_user` rides along (PostgreSQL INCLUDE; ignored by SQLite) so that a funnel
            # step reads its users from the index alone (analytics.queries.funnel).
            models.Index(
                fields=["organization", "feature", "timestamp"],
                include=["end_user"],
                name="event_org_feature_ts_user_idx",
            ),
            models.Index(fields=["organization", "end_user", "timestamp"], name="event_org_user_ts_idx"),
        ]

    def __str__(self):
        return f"{self.uuid} {self.event_type} @ {self.timestamp:%Y-%m-%d %H:%M:%S}"


class EventUuid(models.Model):
    """PostgreSQL's uuid dedupe beside the partitioned events: the uuids of events received
    in the last `EVENT_DEDUPE_DAYS`, so a retry is skipped even when its timestamp moved
    (clock-skew correction), into another month's partition included. Written with the
    events in one transaction; rows expire by `received_at` (`telemetry.event_uuids_expire`).
    Unused on SQLite, whose events table keeps its `(organization, uuid)` unique key."""

    pk = models.CompositePrimaryKey("organization_id", "uuid")
    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    uuid = models.UUIDField()
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"{self.organization_id} {self.uuid}"


class DirtyDay(models.Model):
    """An (organisation, UTC day) that received events after it was rolled up (late data).
    The rollup job recomputes these days and deletes the marks it has handled."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    date = models.DateField()
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "date"], name="dirtyday_org_date_uniq")]

    def __str__(self):
        return f"{self.organization_id} {self.date}"
