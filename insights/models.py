from django.db import models
from django.utils import timezone


class Anomaly(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    feature = models.ForeignKey(
        "telemetry.Feature", null=True, blank=True, on_delete=models.CASCADE, related_name="anomalies"
    )
    date = models.DateField()
    detector = models.CharField(max_length=40)
    metric = models.CharField(max_length=40)
    value = models.FloatField()
    expected = models.FloatField(null=True, blank=True)
    score = models.FloatField()
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.LOW)
    details = models.JSONField(default=dict, blank=True)
    # Time-series anomalies: the segment that carries most of the change (insights.explain);
    # null until explained, and again when a re-run changes the anomaly's numbers.
    explanation = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    # The digest's channels are sent and marked apart (insights.channels), so one that fails
    # is sent again by the next run without the other; notified_at once both have it.
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhooks_queued_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-date", "-score"]
        verbose_name_plural = "anomalies"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "feature", "date", "detector", "metric"],
                name="anomaly_identity_uniq",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["organization", "status", "date"], name="anomaly_org_status_idx")]

    def __str__(self):
        return f"{self.detector}/{self.metric} {self.date} score={self.score:.1f}"


class Insight(models.Model):
    class Source(models.TextChoices):
        GEMINI = "gemini", "Gemini"
        HEURISTIC = "heuristic", "Heuristic"

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    period_start = models.DateField()
    period_end = models.DateField()
    source = models.CharField(max_length=20, choices=Source.choices)
    model = models.CharField(max_length=100, blank=True)
    bullets = models.JSONField(default=list)
    summary = models.TextField(blank=True)
    # The open anomalies the bullets were written about: a narrative whose count no longer
    # matches is regenerated, so it never contradicts the anomalies table below it.
    open_anomalies = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="insight_org_created_idx")]

    def __str__(self):
        return f"{self.source} insight {self.period_start}..{self.period_end}"


class Webhook(models.Model):
    class Event(models.TextChoices):
        ANOMALY_CREATED = "anomaly.created", "Anomaly created"
        EXPORT_DAILY = "export.daily", "Daily export"
        ALERT_FIRED = "alert.fired", "Alert rule fired"

    class Format(models.TextChoices):
        # "slack": the body is a Slack incoming-webhook message ({"text", "blocks"}), which
        # Slack, Mattermost, Rocket.Chat and Discord's /slack endpoint accept as is.
        SIGNED_JSON = "json", "Signed JSON"
        SLACK = "slack", "Slack-compatible"

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100)
    events = models.JSONField(default=list)
    format = models.CharField(max_length=10, choices=Format.choices, default=Format.SIGNED_JSON)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """One attempt at POSTing one event to one webhook, queued before it is made (the outbox,
    `insights.webhooks`): `attempted_at` NULL until a worker claims it; its outcome
    (`status_code`, `error`, `delivered_at`) then. `next_attempt_at`: when a queued attempt is
    due, or, on a failed one, when the next attempt (its own row) is."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField(default=dict)
    attempt = models.PositiveSmallIntegerField(default=1)
    # The same on every attempt of one event (the X-Delivery header): receivers de-duplicate on it.
    delivery_id = models.CharField(max_length=32, blank=True, default="")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempted_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            # The attempts without an outcome (queued, or being made): the few rows the
            # outbox's resend looks through, whatever the history's size.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_open_idx",
                condition=models.Q(delivered_at__isnull=True, status_code__isnull=True, error=""),
            )
        ]

    def __str__(self):
        return f"{self.event} → {self.webhook_id} #{self.attempt}"


class AlertRule(models.Model):
    """A tenant's own alarm on its analytics, checked after each rollup (insights.alerts).
    `params` are validated per kind by `insights.alerts.rules.params_check`."""

    class Kind(models.TextChoices):
        METRIC_THRESHOLD = "metric_threshold", "Metric threshold"
        FUNNEL_CONVERSION = "funnel_conversion", "Funnel conversion"
        RETENTION = "retention", "Retention"

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    params = models.JSONField(default=dict)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey("tenants.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    # Why the latest run could not measure the rule, said to the tenant (the exception's class
    # and a sentence; the traceback is in the log); blank again after a run that measured it.
    last_error = models.CharField(
        max_length=300,
        blank=True,
        default="",
        help_text="Why the latest run could not check the rule; blank once a run has checked it.",
    )
    last_error_at = models.DateTimeField(null=True, blank=True, help_text="When the run that could not check it ran.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "active"], name="alertrule_org_active_idx")]

    def __str__(self):
        return f"{self.name} ({self.kind})"


class AlertFiring(models.Model):
    """One rule firing for one evaluated day: unique per (rule, day), so evaluating a day
    again (a re-rolled day, a retried task) never fires twice."""

    class Delivery(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        NO_RECIPIENTS = "no_recipients", "No recipients"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="firings")
    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    window_start = models.DateField()
    value = models.FloatField()
    threshold = models.FloatField()
    message = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    delivery_status = models.CharField(max_length=20, choices=Delivery.choices, default=Delivery.PENDING)
    delivery = models.JSONField(default=dict, blank=True)
    fired_at = models.DateTimeField(default=timezone.now)
    # Per channel, as for Anomaly; delivery_status is pending until notified_at.
    emailed_at = models.DateTimeField(null=True, blank=True)
    webhooks_queued_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule", "day"], name="alertfiring_rule_day_uniq")]
        indexes = [models.Index(fields=["organization", "notified_at"], name="alertfiring_org_notified_idx")]

    def __str__(self):
        return f"{self.rule_id} fired {self.day}: {self.message}"
