"""UTC days, as every app counts them (DESIGN: days are UTC days in v1)."""

from datetime import UTC, date, datetime, time

from django.utils import timezone


def today() -> date:
    """Today's UTC day."""
    return timezone.now().astimezone(UTC).date()


def day_start(day: date) -> datetime:
    """The first instant of `day` (UTC), so a day is the half-open range
    [day_start(day), day_start(day + 1 day))."""
    return datetime.combine(day, time.min, tzinfo=UTC)
