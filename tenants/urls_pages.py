from django.urls import include, path

from . import views_pages

# Sign-in pages (pages work); organisation settings in urls_settings (settings pages work).
urlpatterns = [
    path("login/", views_pages.LoginView.as_view(), name="login"),
    path("logout/", views_pages.LogoutView.as_view(), name="logout"),
    path("", include("tenants.urls_settings")),
]
