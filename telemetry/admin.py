"""Django admin for platform staff: features, accounts, end users and raw events of every tenant.

UsageEvent is the big table (`LargeTableAdmin`: newest first by id, a capped count), foreign keys as raw ids
(a select box would load every feature and end user), related rows joined in one query."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from core.admin_read_only import CascadeDeleteAdmin, LargeTableAdmin, ReadOnlyModelAdmin
from tenants.models import Organization

from .models import Account, DirtyDay, EndUser, Feature, UsageEvent
from .services import erasure, feature_deletion


@admin.register(Feature)
class FeatureAdmin(CascadeDeleteAdmin):
    list_display = ["key", "name", "organization", "created_at", "deletion_requested_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["key", "name", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at", "deletion_requested_at"]

    # Each table's rows of the feature found through its organisation, not Django's cascade
    # by feature alone (a read of every tenant's rows); features with many events deleted by
    # a worker, chunk by chunk (telemetry.services.feature_deletion).
    def delete_model(self, request, obj):
        self._features_delete(request, Feature.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        self._features_delete(request, queryset)

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "features_queued", None) and IS_POPUP_VAR not in request.POST:
            # Not deleted yet, as the warning says: Django's "deleted successfully" would not.
            return HttpResponseRedirect(reverse("admin:telemetry_feature_changelist"))
        return super().response_delete(request, obj_display, obj_id)

    def message_user(self, request, message, level=messages.INFO, *args, **kwargs):
        # "Delete selected" counts the queued features among those it deleted.
        if getattr(request, "features_queued", None) and level == messages.SUCCESS:
            return
        super().message_user(request, message, level, *args, **kwargs)

    def _features_delete(self, request: HttpRequest, features: QuerySet[Feature]) -> None:
        names = dict(features.values_list("pk", "key"))
        queued = feature_deletion.features_delete_or_queue(features)
        request.features_queued = queued  # type: ignore[attr-defined]
        if not queued:
            return
        deleted = sorted(key for pk, key in names.items() if pk not in queued)
        if deleted:
            super().message_user(request, f"Deleted: {', '.join(deleted)}.", messages.SUCCESS)
        super().message_user(
            request,
            f"Being deleted in the background, chunk by chunk (their events number more than"
            f" {feature_deletion.INLINE_EVENTS:,}): {', '.join(sorted(names[pk] for pk in queued))}. Each feature"
            " goes with the last of its events.",
            messages.WARNING,
        )


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

    # Deleting an end user erases them (a person asking to be forgotten): their events and
    # per-user rollup rows too, and their days are re-rolled (telemetry.services.erasure).
    # The confirmation page says so in counts: listing every row (and checking staff's
    # permission on the read-only rollup tables, which refused it) took seconds and said no.
    def get_deleted_objects(self, objs, request):
        users = list(objs)
        events = UsageEvent.objects.filter(end_user__in=users).count()
        summary = [
            f"{user} ({user.organization}) — their events and per-user rollups go too; the days "
            "they were active are re-rolled by the next rollup"
            for user in users
        ]
        return summary, {"end users": len(users), "events": events}, set(), []

    def delete_model(self, request, obj):
        erasure.end_users_erase(EndUser.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        erasure.end_users_erase(queryset)


@admin.register(UsageEvent)
class UsageEventAdmin(LargeTableAdmin):
    list_display = ["uuid", "organization", "feature", "end_user", "event_type", "session_duration", "timestamp"]
    list_filter = ["organization"]
    list_select_related = ["organization", "feature", "end_user"]
    # Exact ids only, each turned into conditions the event indexes answer (`get_search_results`):
    # a free-text search over millions of events outlasts the statement timeout.
    search_fields = ["=uuid", "=end_user__external_id", "=feature__key"]
    search_help_text = "An event's uuid, an end user's id or a feature key, exactly."
    autocomplete_fields = ["organization"]
    raw_id_fields = ["feature", "end_user"]
    readonly_fields = ["received_at"]
    list_per_page = 50

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[UsageEvent], search_term: str
    ) -> tuple[QuerySet[UsageEvent], bool]:
        """Every event index leads with the organisation: a term becomes (organisation, end
        user), (organisation, feature) or (organisation, uuid) pairs, found in the small
        tables first, rather than a condition on the events alone, which scans them all."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matches = Q(pk__in=[])
        for org_id, user_id in EndUser.objects.filter(external_id=term).values_list("organization_id", "pk")[:100]:
            matches |= Q(organization_id=org_id, end_user_id=user_id)
        for org_id, feature_id in Feature.objects.filter(key=term).values_list("organization_id", "pk")[:100]:
            matches |= Q(organization_id=org_id, feature_id=feature_id)
        try:
            event_uuid = uuid.UUID(term)
        except ValueError:
            pass
        else:
            org_ids = list(Organization.objects.values_list("pk", flat=True))
            matches |= Q(organization_id__in=org_ids, uuid=event_uuid)
        return queryset.filter(matches), False


@admin.register(DirtyDay)
class DirtyDayAdmin(ReadOnlyModelAdmin):
    # Marks are written by ingestion and cleared by the rollup that recomputes their day.
    list_display = ["organization", "date", "marked_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["organization__name"]
    autocomplete_fields = ["organization"]
    date_hierarchy = "date"
