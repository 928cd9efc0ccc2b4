"""Django admin for platform staff: the daily rollups of every tenant, per organisation,
feature, end user and person segment (read them here, recompute them with `manage.py
rollup`)."""

from django.contrib import admin

from core.admin_read_only import ReadOnlyModelAdmin

from .models import (
    AccountFeatureActiveDays,
    DailyAccountUsage,
    DailyDimensionUsage,
    DailyFeatureRecency,
    DailyFeatureSegmentRecency,
    DailyFeatureUsage,
    DailyOrgUsage,
    DailySegmentUsage,
    DailyUserFeatureUsage,
    DailyUserUsage,
    FeatureRecencyStale,
    Segment,
    UserActiveDays,
    UserEventTypeActiveDays,
    UserFeatureActiveDays,
)


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


@admin.register(DailyUserUsage)
class DailyUserUsageAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "end_user", "event_count", "sessions", "features_used", "computed_at"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "end_user"]
    search_fields = ["end_user__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user"]
    date_hierarchy = "date"
    ordering = ["-date", "organization", "end_user"]
    # One row per active end user and day: counting them all would cost more than the page.
    show_full_result_count = False


@admin.register(DailyUserFeatureUsage)
class DailyUserFeatureUsageAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "end_user", "feature", "event_count", "sessions", "computed_at"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "end_user", "feature"]
    search_fields = ["end_user__external_id", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user", "feature"]
    date_hierarchy = "date"
    ordering = ["-date", "organization", "feature", "end_user"]
    show_full_result_count = False


@admin.register(UserActiveDays)
class UserActiveDaysAdmin(ReadOnlyModelAdmin):
    list_display = ["block_start", "organization", "end_user", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "end_user"]
    search_fields = ["end_user__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user"]
    ordering = ["-block_start", "organization", "end_user"]
    show_full_result_count = False


@admin.register(UserFeatureActiveDays)
class UserFeatureActiveDaysAdmin(ReadOnlyModelAdmin):
    list_display = ["block_start", "organization", "feature", "end_user", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "feature", "end_user"]
    search_fields = ["end_user__external_id", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature", "end_user"]
    ordering = ["-block_start", "organization", "feature", "end_user"]
    show_full_result_count = False


@admin.register(UserEventTypeActiveDays)
class UserEventTypeActiveDaysAdmin(ReadOnlyModelAdmin):
    list_display = ["block_start", "organization", "event_type", "end_user", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "end_user"]
    search_fields = ["end_user__external_id", "event_type", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user"]
    ordering = ["-block_start", "organization", "event_type", "end_user"]
    show_full_result_count = False


@admin.register(DailyFeatureRecency)
class DailyFeatureRecencyAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "feature", "users"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]
    ordering = ["-date", "organization", "feature"]
    show_full_result_count = False

    @admin.display(description="users that day")
    def users(self, row: DailyFeatureRecency) -> int:
        return row.absent_before[0] if row.absent_before else 0


@admin.register(DailyFeatureSegmentRecency)
class DailyFeatureSegmentRecencyAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "feature", "age_band", "gender", "users"]
    list_filter = ["organization", "date", "age_band", "gender"]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]
    ordering = ["-date", "organization", "feature", "age_band", "gender"]
    show_full_result_count = False

    @admin.display(description="users that day")
    def users(self, row: DailyFeatureSegmentRecency) -> int:
        return sum(row.gaps.values())


@admin.register(FeatureRecencyStale)
class FeatureRecencyStaleAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]
    ordering = ["-date", "organization"]


@admin.register(DailySegmentUsage)
class DailySegmentUsageAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "feature", "age_band", "gender", "event_count", "active_users"]
    list_filter = ["organization", "date", "age_band", "gender"]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]
    date_hierarchy = "date"
    ordering = ["-date", "organization", "feature"]
    show_full_result_count = False


@admin.register(DailyAccountUsage)
class DailyAccountUsageAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "feature", "account", "event_count", "active_users", "last_event_at"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "feature", "account"]
    search_fields = ["feature__key", "account__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature", "account"]
    date_hierarchy = "date"
    ordering = ["-date", "organization", "feature"]
    show_full_result_count = False


@admin.register(AccountFeatureActiveDays)
class AccountFeatureActiveDaysAdmin(ReadOnlyModelAdmin):
    list_display = ["block_start", "organization", "account", "feature", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "account", "feature"]
    search_fields = ["account__external_id", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["account", "feature"]
    ordering = ["-block_start", "organization", "account", "feature"]
    show_full_result_count = False


@admin.register(DailyDimensionUsage)
class DailyDimensionUsageAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "feature", "dimension", "value", "age_band", "gender", "event_count"]
    list_filter = ["organization", "date", "dimension"]
    list_select_related = ["organization", "feature"]
    search_fields = ["dimension", "value", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]
    date_hierarchy = "date"
    ordering = ["-date", "organization", "dimension"]
    show_full_result_count = False


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Saved segments (named filter sets) of every tenant; analysts manage them in the API."""

    list_display = ["name", "organization", "filters", "updated_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]
    autocomplete_fields = ["organization"]
    ordering = ["organization", "name"]
