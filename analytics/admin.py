"""Django admin for platform staff: the daily rollups of every tenant, per organisation,
feature, end user and person segment (read them here, recompute them with `manage.py
rollup`)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from core.admin_read_only import LargeTableAdmin, ReadOnlyModelAdmin, choices_filter
from core.exceptions import DomainError
from telemetry.models import EndUser

from . import segments
from .models import (
    AccountFeatureActiveDays,
    DailyAccountRecency,
    DailyAccountUsage,
    DailyDimensionUsage,
    DailyEventTypeRecency,
    DailyFeatureRecency,
    DailyFeatureSegmentRecency,
    DailyFeatureUsage,
    DailyOrgUsage,
    DailySegmentRecency,
    DailySegmentUsage,
    DailyUserFeatureUsage,
    DailyUserUsage,
    FeatureBit,
    FeatureRecencyStale,
    Segment,
    UserActiveDays,
    UserEventTypeActiveDays,
    UserFeatureActiveDays,
)
from .queries.filters import AGE_BANDS

# Fixed choices: Django's filter over a plain column reads its distinct values first, a scan
# of the table on every page.
AgeBandFilter = choices_filter("age_band", "age band", [*((band, band) for band in AGE_BANDS), ("", "unknown")])
GenderFilter = choices_filter("gender", "gender", [*EndUser.Gender.choices, ("", "unknown")])


class DimensionKindFilter(admin.SimpleListFilter):
    """The dimension's kind (event type, an event property, an end-user property), whose
    values are fixed, where the dimensions themselves are whatever the tenants send."""

    title = "dimension"
    parameter_name = "kind"
    KINDS = {
        "event_type": ("event types", {"dimension": "event_type"}),
        "event": ("event properties", {"dimension__startswith": "event."}),
        "user": ("end-user properties", {"dimension__startswith": "user."}),
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(kind, label) for kind, (label, _) in self.KINDS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        kind = self.KINDS.get(self.value() or "")
        return queryset if kind is None else queryset.filter(**kind[1])


@admin.register(DailyFeatureUsage)
class DailyFeatureUsageAdmin(LargeTableAdmin):
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
class DailyUserUsageAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "end_user", "event_count", "sessions", "features_used", "computed_at"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "end_user"]
    search_fields = ["end_user__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user"]


@admin.register(DailyUserFeatureUsage)
class DailyUserFeatureUsageAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "end_user", "feature", "event_count", "sessions", "computed_at"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "end_user", "feature"]
    search_fields = ["end_user__external_id", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user", "feature"]


@admin.register(UserActiveDays)
class UserActiveDaysAdmin(LargeTableAdmin):
    list_display = ["block_start", "organization", "end_user", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "end_user"]
    search_fields = ["end_user__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user"]


@admin.register(UserFeatureActiveDays)
class UserFeatureActiveDaysAdmin(LargeTableAdmin):
    list_display = ["block_start", "organization", "feature", "end_user", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "feature", "end_user"]
    search_fields = ["end_user__external_id", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature", "end_user"]


@admin.register(UserEventTypeActiveDays)
class UserEventTypeActiveDaysAdmin(LargeTableAdmin):
    list_display = ["block_start", "organization", "event_type", "end_user", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "end_user"]
    search_fields = ["end_user__external_id", "event_type", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["end_user"]


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
class DailyFeatureSegmentRecencyAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "feature", "age_band", "gender", "users"]
    list_filter = ["organization", "date", AgeBandFilter, GenderFilter]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]

    @admin.display(description="users that day")
    def users(self, row: DailyFeatureSegmentRecency) -> int:
        return sum(row.gaps.values())


@admin.register(DailyAccountRecency)
class DailyAccountRecencyAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "account", "features"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "account"]
    search_fields = ["account__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["account"]

    @admin.display(description="features used that day")
    def features(self, row: DailyAccountRecency) -> int:
        return len(row.gaps)


@admin.register(DailySegmentRecency)
class DailySegmentRecencyAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "age_band", "gender", "users"]
    list_filter = ["organization", "date", AgeBandFilter, GenderFilter]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]
    autocomplete_fields = ["organization"]
    ordering = ["-date", "organization", "age_band", "gender"]
    show_full_result_count = False

    @admin.display(description="users that day")
    def users(self, row: DailySegmentRecency) -> int:
        return sum(row.gaps.values())


@admin.register(DailyEventTypeRecency)
class DailyEventTypeRecencyAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization", "event_type", "users"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization"]
    search_fields = ["event_type", "organization__name"]
    autocomplete_fields = ["organization"]
    ordering = ["-date", "organization", "event_type"]
    show_full_result_count = False

    @admin.display(description="users that day")
    def users(self, row: DailyEventTypeRecency) -> int:
        return sum(row.gaps.values())


@admin.register(FeatureRecencyStale)
class FeatureRecencyStaleAdmin(ReadOnlyModelAdmin):
    list_display = ["date", "organization"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]
    ordering = ["-date", "organization"]


@admin.register(FeatureBit)
class FeatureBitAdmin(ReadOnlyModelAdmin):
    list_display = ["organization", "bit", "feature"]
    list_filter = ["organization"]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "organization__name"]
    ordering = ["organization", "bit"]


@admin.register(DailySegmentUsage)
class DailySegmentUsageAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "feature", "age_band", "gender", "event_count", "active_users"]
    list_filter = ["organization", "date", AgeBandFilter, GenderFilter]
    list_select_related = ["organization", "feature"]
    search_fields = ["feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]


@admin.register(DailyAccountUsage)
class DailyAccountUsageAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "feature", "account", "event_count", "active_users", "last_event_at"]
    list_filter = ["organization", "date"]
    list_select_related = ["organization", "feature", "account"]
    search_fields = ["feature__key", "account__external_id", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature", "account"]


@admin.register(AccountFeatureActiveDays)
class AccountFeatureActiveDaysAdmin(LargeTableAdmin):
    list_display = ["block_start", "organization", "account", "feature", "active_days"]
    list_filter = ["organization", "block_start"]
    list_select_related = ["organization", "account", "feature"]
    search_fields = ["account__external_id", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["account", "feature"]


@admin.register(DailyDimensionUsage)
class DailyDimensionUsageAdmin(LargeTableAdmin):
    list_display = ["date", "organization", "feature", "dimension", "value", "age_band", "gender", "event_count"]
    list_filter = ["organization", "date", DimensionKindFilter]
    list_select_related = ["organization", "feature"]
    search_fields = ["dimension", "value", "feature__key", "organization__name"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature"]


class SegmentForm(forms.ModelForm):
    class Meta:
        model = Segment
        fields = ["organization", "name", "filters", "updated_at"]

    def clean(self) -> dict[str, Any]:
        """The filters checked as the API checks them, against the organisation chosen here:
        saved unchecked (a list, an unknown age band, another organisation's account), they
        broke every page the segment was picked on, and the Segments page with a 500."""
        cleaned = super().clean() or {}
        org = cleaned.get("organization")
        if org is not None and "filters" in cleaned:
            try:
                cleaned["filters"] = segments.segment_filters_clean(org, cleaned["filters"])
            except DomainError as exc:
                self.add_error("filters", exc.detail)
        return cleaned


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    """Saved segments (named filter sets) of every tenant; analysts manage them in the API."""

    form = SegmentForm

    list_display = ["name", "organization", "filters", "updated_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]
    autocomplete_fields = ["organization"]
    ordering = ["organization", "name"]
