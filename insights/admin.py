"""Django admin for platform staff: anomalies, insights, webhooks and their deliveries of
every tenant. Webhook secrets are write-only here as in the API."""

from django.contrib import admin
from django.db import models

from core.admin_read_only import ReadOnlyModelAdmin

from .models import Anomaly, Insight, Webhook, WebhookDelivery


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
    readonly_fields = ["created_at", "updated_at", "notified_at"]


@admin.register(Insight)
class InsightAdmin(admin.ModelAdmin):
    list_display = ["organization", "period_start", "period_end", "source", "model", "created_at"]
    list_filter = ["source", "organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__name", "summary"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "organization", "events", "active", "created_at"]
    list_filter = ["active", "organization"]
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
class WebhookDeliveryAdmin(admin.ModelAdmin):
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
