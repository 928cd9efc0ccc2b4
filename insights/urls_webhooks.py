"""/api/v1/org/webhooks: the organisation's webhooks and their deliveries. They sit beside
tenants' `org` routes in the API, but the rows are insights' (tenants may not import them)."""

from django.urls import include, path

from . import views_api as v

app_name = "webhooks"

urlpatterns = [
    # The prefix has no slash because `/api/v1/org/webhooks` itself is a route.
    path("", v.WebhookListView.as_view(), name="list"),
    path(
        "/",
        include(
            [
                path("<int:webhook_id>", v.WebhookDetailView.as_view(), name="detail"),
                path("<int:webhook_id>/deliveries", v.WebhookDeliveryListView.as_view(), name="deliveries"),
            ]
        ),
    ),
]
