"""/settings/alert-rules/: the Alert rules tab of Settings (insights owns the rows)."""

from django.urls import path

from . import views_settings as views

app_name = "alert-rule-settings"

urlpatterns = [
    path("", views.alert_rules, name="index"),
    path("<int:rule_id>/edit/", views.alert_rule_edit, name="edit"),
    path("<int:rule_id>/toggle/", views.alert_rule_toggle, name="toggle"),
    path("<int:rule_id>/delete/", views.alert_rule_delete, name="delete"),
]
