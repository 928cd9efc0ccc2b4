"""Django admin for platform staff: the daily rollups of every tenant (read them here,
recompute them with `manage.py rollup`)."""

from django.contrib import admin

from core.admin_read_only import ReadOnlyModelAdmin

from .models import DailyFeatureUsage, DailyOrgUsage


@admin.register(DailyFeatureUsage)
class DailyFeatureUsageAdmin(ReadOnlyModelAdmin):
    list_display = [
        "date",
        "organization",
        "feature",
        "event_count",
        "daily_active_users",
        "sessions",
        "avg_session_duration",
        "computed_at",
    ]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "feature__name", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]
    date_hierarchy = "date"
    ordering = ["-date", "organization", "feature"]
    show_full_result_count = False


@admin.register(DailyOrgUsage)
class DailyOrgUsageAdmin(ReadOnlyModelAdmin):
    list_display = [
        "date",
        "organization",
        "event_count",
        "active_users",
        "sessions",
        "avg_session_duration",
        "computed_at",
    ]
    list_filter = ["organization", "date"]
    list_select_related = ["organization"]
    search_fields = ["organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    date_hierarchy = "date"
    ordering = ["-date", "organization"]
