"""Which days the rollups cover."""

from __future__ import annotations

from datetime import date, timedelta

from django.db.models import Max

from core.days import today
from tenants.models import Organization

from ..models import DailyFeatureUsage, DailyOrgUsage


def last_complete_day(
    org: Organization, *, rollup: type[DailyFeatureUsage | DailyOrgUsage] = DailyFeatureUsage
) -> date | None:
    """The latest day before today (UTC) that `rollup` (the per-feature rows, or the
    organisation's with DailyOrgUsage) has for `org`, None before any: today's rollup is
    partial and would read as a drop on every series."""
    yesterday = today() - timedelta(days=1)
    return rollup.objects.filter(organization=org, date__lte=yesterday).aggregate(last=Max("date"))["last"]
