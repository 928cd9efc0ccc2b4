from django.urls import include, path

# Sign-in pages live in views_pages (pages work); organisation settings in urls_settings.
urlpatterns = [
    path("", include("tenants.urls_settings")),
]
