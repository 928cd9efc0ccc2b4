"""/api/v1/org: the organisation, its members, invitations and API keys. `org/webhooks` is
insights' (its own line in usage_platform/urls.py)."""

from django.urls import include, path

from . import views_api as v

app_name = "org"

urlpatterns = [
    # The prefix has no slash because `/api/v1/org` itself is a route; the rest hang off "/".
    path("", v.OrganizationView.as_view(), name="organization"),
    path(
        "/",
        include(
            [
                path("members", v.MemberListView.as_view(), name="members"),
                path("members/<int:member_id>", v.MemberDetailView.as_view(), name="member"),
                path("invitations", v.InvitationListView.as_view(), name="invitations"),
                path("invitations/<int:invitation_id>", v.InvitationDetailView.as_view(), name="invitation"),
                path("api-keys", v.ApiKeyListView.as_view(), name="api-keys"),
                path("api-keys/<int:key_id>", v.ApiKeyDetailView.as_view(), name="api-key"),
            ]
        ),
    ),
]
