"""The dashboard's pages, which own the root of the site: `/`, features/, users/, retention/,
funnels/ (the only include mounted at "" in usage_platform/urls.py)."""

from django.urls import path

from . import views_pages as views

app_name = "analytics"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("features/", views.features, name="features"),
    path("features/<int:feature_id>/", views.feature_detail, name="feature-detail"),
    path("users/", views.users, name="users"),
    # External ids are the tenant product's own user ids: any characters, slashes included.
    path("users/<path:external_id>/", views.user_detail, name="user-detail"),
    path("retention/", views.retention, name="retention"),
    path("funnels/", views.funnels, name="funnels"),
]
