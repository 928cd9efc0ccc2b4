"""/settings/: the organisation, members and invitations, API keys (admins). The Webhooks
tab is insights' (`settings/webhooks/` in usage_platform/urls.py): tenants may not import
insights."""

from django.urls import path

from . import views_settings as views

app_name = "settings"

urlpatterns = [
    path("", views.organization, name="organization"),
    path("members/", views.members, name="members"),
    path("members/<int:member_id>/role/", views.member_role, name="member-role"),
    path("members/<int:member_id>/remove/", views.member_remove, name="member-remove"),
    path("invitations/", views.invitation_create, name="invitation-create"),
    path("invitations/<int:invitation_id>/revoke/", views.invitation_revoke, name="invitation-revoke"),
    path("api-keys/", views.api_keys, name="api-keys"),
    path("api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="api-key-revoke"),
    path("api-keys/<int:key_id>/origins/", views.api_key_origins, name="api-key-origins"),
]
