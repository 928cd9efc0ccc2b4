"""Django admin for platform staff: every tenant's organisations, people, keys and
invitations. Secrets are never shown (only hashes are stored) and keys/invitations are not
created here, because their one-time secret would have nowhere to be shown.

The admin site's own pieces live here too (tenants owns sign-in): the throttled staff login
and the scheduled-task list, whose "run now" action must survive a broker outage."""

import logging

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.db import router, transaction
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask
from kombu.exceptions import OperationalError as BrokerUnreachable

from core.admin_read_only import CascadeDeleteAdmin

from . import org_deletion, services
from .models import ApiKey, Invitation, Organization, Role, User
from .views_pages import ThrottledLoginFormMixin

logger = logging.getLogger(__name__)


class ThrottledAdminLoginForm(ThrottledLoginFormMixin, AdminAuthenticationForm):
    pass


# The staff login is throttled like every other login path; `views_pages.admin_login` (routed
# in front of the admin's own login URL) turns a throttled form into a 429.
admin.site.login_form = ThrottledAdminLoginForm


class ScheduledTaskAdmin(PeriodicTaskAdmin):
    @admin.action(description="Run selected tasks")
    def run_tasks(self, request, queryset):
        try:
            return super().run_tasks(request, queryset)
        except BrokerUnreachable as exc:
            # Queuing is the whole of this action, so say it did not happen instead of a 500.
            logger.warning("admin: could not queue scheduled tasks, the Celery broker is unreachable (%s)", exc)
            self.message_user(
                request,
                "The task queue (Celery broker) is unreachable, so the selected tasks were not queued. "
                "Try again once /health/detailed shows the broker ok.",
                messages.ERROR,
            )


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, ScheduledTaskAdmin)


class DeletionFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("deleting", "Being deleted")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.in_service()
        if self.value() == "deleting":
            return queryset.filter(deletion_requested_at__isnull=False)
        return queryset


BEING_DELETED = (
    "{names}: being deleted. Their API keys are revoked and their people signed out now; their data is "
    "deleted in the background, and the list shows how far it got."
)


@admin.register(Organization)
class OrganizationAdmin(CascadeDeleteAdmin):
    """Deleting an organisation here (its page or "Delete selected") only marks and shuts it:
    a worker deletes its rows chunk by chunk, then the organisation (tenants.org_deletion),
    where the cascade in this request outlasted the web worker's timeout."""

    list_display = [
        "name",
        "slug",
        "plan_type",
        "member_count",
        "auto_create_features",
        "alert_threshold",
        "created_at",
        "state",
    ]
    list_filter = [DeletionFilter, "plan_type", "auto_create_features", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "state"]
    ordering = ["name"]
    actions = ["delete_selected"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_member_count=Count("members", distinct=True))

    @admin.display(description="members", ordering="_member_count")
    def member_count(self, org):
        return org._member_count

    @admin.display(description="state")
    def state(self, org):
        return org_deletion.deletion_state(org)

    def delete_model(self, request, obj):
        org_deletion.organizations_deletion_request([obj])

    def delete_queryset(self, request, queryset):
        org_deletion.organizations_deletion_request(queryset)

    def response_delete(self, request, obj_display, obj_id):
        if IS_POPUP_VAR in request.POST:
            return super().response_delete(request, obj_display, obj_id)
        self.message_user(request, BEING_DELETED.format(names=f"“{obj_display}”"), messages.SUCCESS)
        url = reverse("admin:tenants_organization_changelist", current_app=self.admin_site.name)
        context = {"preserved_filters": self.get_preserved_filters(request), "opts": self.opts}
        return HttpResponseRedirect(add_preserved_filters(context, url))

    @admin.action(permissions=["delete"], description="Delete selected organizations")
    def delete_selected(self, request, queryset):
        # Django's action for the confirmation page; its last step would say "Successfully
        # deleted", of organisations that are only on their way out.
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        orgs = list(queryset)
        if orgs:
            self.log_deletions(request, orgs)
            self.delete_queryset(request, orgs)
            names = ", ".join(f"“{org}”" for org in orgs)
            self.message_user(request, BEING_DELETED.format(names=names), messages.SUCCESS)
        return None


def deleted_organization_check(cleaned: dict) -> None:
    """An active account in an organisation being deleted would undo its shutting (its
    people are deactivated so that none can sign in while its data goes). Platform staff
    are not deactivated with it (tenants.org_deletion)."""
    org = cleaned.get("organization")
    active = cleaned.get("is_active", True) and not cleaned.get("is_staff")
    if org is not None and org.deletion_requested_at is not None and active:
        raise ValidationError(f"{org} is being deleted: its accounts stay inactive until it is gone.")


class UserCreationForm(AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ["email"]

    def clean(self):
        cleaned = super().clean()
        deleted_organization_check(cleaned)
        return cleaned


class UserEditForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        deleted_organization_check(cleaned)
        before = User.objects.filter(pk=self.instance.pk).first() if self.instance.pk else None
        leaves = before is not None and (
            cleaned.get("role") != Role.ADMIN
            or not cleaned.get("is_active")
            or cleaned.get("organization") != before.organization
        )
        # The admin validates and saves in one transaction (changeform_view), so the admin rows
        # this locks stay locked until the change is written.
        if leaves and services.last_admins_among([before]):
            raise ValidationError(
                f"{before.email} is the last active admin of {before.organization}: make someone else "
                "admin there first (the organisation could no longer manage its members, keys or alerts)."
            )
        return cleaned


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    list_display = ["email", "full_name", "organization", "role", "is_active", "is_staff", "is_superuser", "last_login"]
    list_filter = ["role", "is_active", "is_staff", "is_superuser", "organization"]
    list_select_related = ["organization"]
    search_fields = ["email", "full_name", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    ordering = ["email"]
    readonly_fields = ["created_at", "last_login"]
    filter_horizontal = ["groups", "user_permissions"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "organization", "role"]}),
        (
            "Platform permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "created_at"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["email", "organization", "role", "usable_password", "password1", "password2"],
            },
        ),
    ]

    def get_deleted_objects(self, objs, request):
        # An organisation's last admin is listed as what blocks the deletion, on the delete
        # page and the "Delete selected" action alike.
        to_delete, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        last = services.last_admins_among(list(objs))
        blocking = [
            f"{u.email}: the last active admin of {u.organization} (make someone else admin first)" for u in last
        ]
        return to_delete, counts, perms_needed, [*protected, *blocking]

    def response_action(self, request, queryset):
        # "Delete selected" checks for last admins (get_deleted_objects) and deletes in two
        # steps outside any transaction of Django's: one here keeps the check's locks until
        # the rows are gone.
        with transaction.atomic(using=router.db_for_write(self.model)):
            return super().response_action(request, queryset)

    def get_form(self, request, obj=None, **kwargs):
        # The creation form only declares `email`; the admin adds organisation and role.
        if obj is None:
            kwargs["fields"] = ["email", "organization", "role"]
        return super().get_form(request, obj, **kwargs)


class ActiveKeyFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "organization", "is_active", "created_by", "created_at", "last_used_at"]
    list_filter = [ActiveKeyFilter, "organization", "created_at"]
    list_select_related = ["organization", "created_by"]
    search_fields = ["name", "prefix", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["created_by"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.display(boolean=True, description="active")
    def is_active(self, api_key):
        return api_key.is_active

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        services.api_keys_forget()
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


class InvitationStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("pending", "Pending"), ("accepted", "Accepted"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "accepted":
            return queryset.filter(accepted_at__isnull=False)
        if value == "revoked":
            return queryset.filter(accepted_at__isnull=True, revoked_at__isnull=False)
        open_ = queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True)
        if value == "pending":
            return open_.filter(expires_at__gt=now)
        if value == "expired":
            return open_.filter(expires_at__lte=now)
        return queryset


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "organization", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = [InvitationStatusFilter, "role", "organization"]
    list_select_related = ["organization", "invited_by"]
    search_fields = ["email", "organization__name", "organization__slug"]
    autocomplete_fields = ["organization"]
    raw_id_fields = ["invited_by"]
    readonly_fields = ["token_hash", "created_at", "accepted_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="status")
    def status(self, invitation):
        return invitation.status

    @admin.action(description="Withdraw the selected invitations")
    def revoke(self, request, queryset):
        count = queryset.filter(accepted_at__isnull=True, revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Withdrew {count} invitation(s).", messages.SUCCESS)
