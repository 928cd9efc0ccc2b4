"""The request around the validation pass: what the pass needs about the caller and the
clock (`EventContext`, computed once per request), and the compatibility `org_id` check that
refuses a request naming another tenant before any event is read."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from core.days import day_start
from core.exceptions import Forbidden
from tenants.models import Organization, User

from .. import partitions

# The floor of every timestamp: the validator names it ("before 1970") when no later one applies.
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)


class EventContext:
    """What the pass needs about the caller and the clock, computed once per request. With the
    client's `sent_at`, timestamps are moved by its clock skew `now − sent_at` before the checks."""

    def __init__(self, org: Organization, user: User | None, *, sent_at: datetime | None = None) -> None:
        self.org = org
        self.now = datetime.now(UTC)
        self.skew = None if sent_at is None else self.now - sent_at
        self.max_ts = self.now + settings.INGEST_MAX_FUTURE
        # Events older than the raw-event retention would land in a month already dropped.
        self.horizon = partitions.raw_events_horizon(now=self.now)
        max_age = settings.INGEST_MAX_AGE_DAYS
        self.oldest = max(MIN_TIMESTAMP, self.now - timedelta(days=max_age)) if max_age else MIN_TIMESTAMP
        self.min_ts = max(self.oldest, self.horizon) if self.horizon else self.oldest
        self.today_start = day_start(self.now.date())
        self.max_metadata = settings.INGEST_MAX_METADATA_BYTES
        # A person sending events (JWT) always sends them as themselves: their end-user
        # profile is keyed by their e-mail and linked to their account. Staff are exempt.
        self.own_user: dict[str, Any] | None = None
        if user is not None and not user.is_superuser:
            self.own_user = {"external_id": user.email, "email": user.email, "member_id": user.pk}


def org_id_foreign(org: Organization, item: object) -> bool:
    """Whether an event's compatibility `org_id` names an organisation other than `org`."""
    if not isinstance(item, dict) or item.get("org_id") in (None, ""):
        return False
    value = item["org_id"]
    # Compared by type, never through str(): that of a deeply nested value recurses.
    return not ((type(value) is int and value == org.pk) or (type(value) is str and value == str(org.pk)))


def org_ids_check(org: Organization, items: Sequence[object]) -> None:
    """Compatibility `org_id` must name the caller's organisation: anything else is an
    attempt to write into another tenant, refused for the whole request (403)."""
    if any(org_id_foreign(org, item) for item in items):
        raise Forbidden(
            "org_id does not match the organisation of your credentials.",
            errors={"org_id": ["Events can only be sent to your own organisation."]},
        )
