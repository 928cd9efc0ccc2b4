from django.urls import path

from . import views_pages as views

urlpatterns = [
    # Settings → Webhooks (insights owns the rows; tenants may not import insights).
    path("settings/webhooks/", views.webhooks, name="settings-webhooks"),
    path("settings/webhooks/<int:webhook_id>/toggle/", views.webhook_toggle, name="settings-webhook-toggle"),
    path("settings/webhooks/<int:webhook_id>/delete/", views.webhook_delete, name="settings-webhook-delete"),
]
