"""Django admin for platform staff: anomalies, insights, webhooks and their deliveries, alert
rules and their firings of every tenant. Webhook secrets are write-only here as in the API."""

from django.contrib import admin
from django.db import models

from core.admin_read_only import ReadOnlyModelAdmin

from .models import AlertFiring, AlertRule, Anomaly, Insight, Webhook, WebhookDelivery


@admin.register(Anomaly)
class AnomalyAdmin(ReadOnlyModelAdmin):
    list_display = [
        "date",
        "organization",
        "feature",
        "detector",
        "metric",
        "value",
        "expected",
        "score",
        "severity",
        "status",
    ]
    list_filter = ["status", "severity", "detector", "metric", "organization"]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "feature__name", "organization__name", "detector", "metric"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]
    date_hierarchy = "date"
    readonly_fields = ["created_at", "updated_at", "webhooks_queued_at", "emailed_at", "notified_at"]


@admin.register(Insight)
class InsightAdmin(ReadOnlyModelAdmin):
    # Generated from the rollups (or by the model) and cached per period; regenerated, never edited.
    list_display = ["organization", "period_start", "period_end", "source", "model", "created_at"]
    list_filter = ["source", "organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__name", "summary"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "organization", "events", "format", "active", "created_at"]
    list_filter = ["active", "format", "organization"]
    list_select_related = ["organization"]
    search_fields = ["url", "organization__name"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]
    exclude = ["secret"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        # The secret is generated and shown once by the API; an admin form has nowhere to show it.
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyModelAdmin):
    # A record of what was sent and what the receiver answered.
    list_display = [
        "created_at",
        "webhook",
        "organization",
        "event",
        "attempt",
        "status_code",
        "delivered_at",
        "next_attempt_at",
    ]
    list_filter = ["event", "status_code", "webhook__organization"]
    list_select_related = ["webhook__organization"]
    search_fields = ["webhook__url", "webhook__organization__name", "error"]
    raw_id_fields = ["webhook"]
    readonly_fields = ["created_at"]
    show_full_result_count = False

    @admin.display(description="organization", ordering="webhook__organization__name")
    def organization(self, delivery):
        return delivery.webhook.organization


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    # Params are validated per kind by insights.alerts.rules, which an admin form would bypass:
    # staff may pause a rule or delete it, tenants create and edit them.
    list_display = ["name", "organization", "kind", "active", "last_evaluated_at", "last_error", "created_at"]
    list_filter = ["kind", "active", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name", "last_error"]
    fields = [
        "organization",
        "name",
        "kind",
        "params",
        "active",
        "created_by",
        "last_evaluated_at",
        "last_error",
        "last_error_at",
        "created_at",
    ]
    readonly_fields = [
        "organization",
        "name",
        "kind",
        "params",
        "created_by",
        "last_evaluated_at",
        "last_error",
        "last_error_at",
        "created_at",
    ]

    def has_add_permission(self, request):
        return False


@admin.register(AlertFiring)
class AlertFiringAdmin(admin.ModelAdmin):
    list_display = ["day", "rule", "organization", "value", "threshold", "delivery_status", "fired_at"]
    list_filter = ["delivery_status", "rule__kind", "organization"]
    list_select_related = ["rule", "organization"]
    search_fields = ["rule__name", "organization__name", "message"]
    date_hierarchy = "day"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # A record of what was sent; only deleting it makes sense.
        return False
