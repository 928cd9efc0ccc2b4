"""Django admin for platform staff: features, accounts, end users and raw events of every tenant.

UsageEvent is the big table: no full count on the change list, foreign keys as raw ids
(a select box would load every feature and end user), related rows joined in one query."""

from django.contrib import admin

from core.admin_read_only import ReadOnlyModelAdmin

from .models import Account, DirtyDay, EndUser, Feature, UsageEvent


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "organization", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["key", "name", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at"]


@admin.register(Account)
class AccountAdmin(ReadOnlyModelAdmin):
    """Read-only: accounts come from the tenant's SDK calls (group, `account_id`), and an
    edit here would be overwritten by the next call."""

    list_display = ["external_id", "name", "organization", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["external_id", "name", "organization__name"]
    show_full_result_count = False


@admin.register(EndUser)
class EndUserAdmin(admin.ModelAdmin):
    list_display = ["external_id", "email", "organization", "age", "gender", "first_seen", "last_seen"]
    list_filter = ["gender", "organization"]
    list_select_related = ["organization"]
    search_fields = ["external_id", "email", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["account", "member"]
    readonly_fields = ["created_at"]
    show_full_result_count = False


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyModelAdmin):
    list_display = ["uuid", "organization", "feature", "end_user", "event_type", "session_duration", "timestamp"]
    list_filter = ["event_type", "organization"]
    list_select_related = ["organization", "feature", "end_user"]
    search_fields = ["=uuid", "=session_id", "=end_user__external_id", "feature__key"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature", "end_user"]
    readonly_fields = ["received_at"]
    ordering = ["-timestamp"]
    show_full_result_count = False
    list_per_page = 50


@admin.register(DirtyDay)
class DirtyDayAdmin(ReadOnlyModelAdmin):
    # Marks are written by ingestion and cleared by the rollup that recomputes their day.
    list_display = ["organization", "date", "marked_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]
    autocomplete_fields = ["organization"]
    date_hierarchy = "date"
