"""The dashboard's pages, which own the root of the site: `/`, features/, users/, accounts/, retention/,
funnels/, segments/ (the only include mounted at "" in usage_platform/urls.py)."""

from django.urls import path

from .views_pages import accounts, cohorts, dashboard, features, segments, users

app_name = "analytics"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("features/", features.features, name="features"),
    path("features/<int:feature_id>/", features.feature_detail, name="feature-detail"),
    path("users/", users.users, name="users"),
    # External ids are the tenant product's own user ids: any characters, slashes included.
    path("users/<path:external_id>/", users.user_detail, name="user-detail"),
    path("accounts/", accounts.accounts, name="accounts"),
    path("accounts/<path:account_id>/", accounts.account_detail, name="account-detail"),
    path("retention/", cohorts.retention, name="retention"),
    path("funnels/", cohorts.funnels, name="funnels"),
    path("segments/", segments.segment_list, name="segments"),
    path("segments/new/", segments.segment_new, name="segment-new"),
    path("segments/<int:segment_id>/delete/", segments.segment_delete, name="segment-delete"),
]
