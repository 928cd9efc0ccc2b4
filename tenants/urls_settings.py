from django.urls import path

from . import views_settings as views

# Webhook settings live in insights/urls_pages.py (tenants may not import insights).
urlpatterns = [
    path("settings/", views.organization, name="settings-organization"),
    path("settings/members/", views.members, name="settings-members"),
    path("settings/members/<int:member_id>/role/", views.member_role, name="settings-member-role"),
    path("settings/members/<int:member_id>/remove/", views.member_remove, name="settings-member-remove"),
    path("settings/invitations/", views.invitation_create, name="settings-invitation-create"),
    path(
        "settings/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="settings-invitation-revoke",
    ),
    path("settings/api-keys/", views.api_keys, name="settings-api-keys"),
    path("settings/api-keys/<int:key_id>/revoke/", views.api_key_revoke, name="settings-api-key-revoke"),
    path("invite/<str:token>/", views.invitation_accept, name="invitation-accept"),
]
