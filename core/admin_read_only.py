"""A Django admin that only shows rows: for what the platform computes or receives (rollups,
raw events, anomalies). A hand-made or hand-edited row would disagree with its source —
recompute a rollup with `manage.py rollup`, change an anomaly's status through the API."""

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyModelAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
