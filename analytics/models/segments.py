"""Saved segments: named filter sets of an organisation."""

from django.db import models
from django.utils import timezone


class Segment(models.Model):
    """A named, saved filter set of an organisation (DESIGN "Accounts and segments"):
    `filters` holds query-string values ({"age": "<18", "user.plan": "pro", …}), validated
    like a query string when saved and again when used (a feature may have been deleted)."""

    organization = models.ForeignKey("tenants.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    filters = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="segment_org_name_uniq")]

    def __str__(self):
        return self.name
