from django.urls import path

from . import views_api as v

urlpatterns = [
    path("auth/register", v.RegisterView.as_view(), name="auth-register"),
    path("auth/login", v.LoginView.as_view(), name="auth-login"),
    path("auth/refresh", v.RefreshView.as_view(), name="auth-refresh"),
    path("auth/logout", v.LogoutView.as_view(), name="auth-logout"),
    path("auth/me", v.MeView.as_view(), name="auth-me"),
    path("auth/accept-invite", v.AcceptInviteView.as_view(), name="auth-accept-invite"),
    path("org", v.OrganizationView.as_view(), name="org"),
    path("org/members", v.MemberListView.as_view(), name="org-members"),
    path("org/members/<int:member_id>", v.MemberDetailView.as_view(), name="org-member"),
    path("org/invitations", v.InvitationListView.as_view(), name="org-invitations"),
    path("org/invitations/<int:invitation_id>", v.InvitationDetailView.as_view(), name="org-invitation"),
    path("org/api-keys", v.ApiKeyListView.as_view(), name="org-api-keys"),
    path("org/api-keys/<int:key_id>", v.ApiKeyDetailView.as_view(), name="org-api-key"),
]
