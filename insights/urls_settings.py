"""/settings/webhooks/: the Webhooks tab of Settings. Insights owns the rows and tenants may
not import insights, so the tab is served from here in the settings layout."""

from django.urls import path

from . import views_settings as views

app_name = "webhook-settings"

urlpatterns = [
    path("", views.webhooks, name="index"),
    path("<int:webhook_id>/toggle/", views.webhook_toggle, name="toggle"),
    path("<int:webhook_id>/delete/", views.webhook_delete, name="delete"),
]
