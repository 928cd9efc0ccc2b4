"""The two channels of a digest (the anomalies' and the rule firings'), sent apart.

Each row a digest covers carries a mark per channel: `webhooks_queued_at` once its webhooks
are queued (or it had none to go to), `emailed_at` once the admins were e-mailed (or there
was nobody to mail), and `notified_at` once both are set. Each channel claims the rows it
has not covered yet (`queries.unnotified_claimed`) in a transaction of its own, sends, and
marks them; a channel that raises rolls back only its own marks. So SMTP being down leaves
the e-mail to the next run without holding the webhooks back or queueing them a second
time, and the other way round. The webhooks go first: queueing them is quick, and from then
on their deliveries are retried by the delivery task, whatever the mail server does."""

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.utils import timezone

from core.exceptions import storage_outage
from tenants.models import Organization

from .models import AlertFiring, Anomaly

logger = logging.getLogger(__name__)

WEBHOOKS = "webhooks_queued_at"
EMAIL = "emailed_at"
MARKS = (WEBHOOKS, EMAIL)

Row = TypeVar("Row", Anomaly, AlertFiring)
# What a channel covered: the ids of its rows, and how many e-mails or webhooks it sent.
Sent = tuple[set[int], int]


def channel_send(org: Organization, what: str, send: Callable[[], Sent]) -> Sent:
    """`send()`, or nothing sent when it raises: logged, and what it had not marked is sent
    by the next run. An outage is raised (the other channel's writes would fail too)."""
    try:
        return send()
    except Exception as exc:
        if storage_outage(exc):
            raise
        logger.exception("%s of organisation %s failed; the next run sends what it did not mark", what, org.pk)
        return set(), 0


def digest_send(
    org: Organization, *, webhooks: tuple[str, Callable[[], Sent]], email: tuple[str, Callable[[], Sent]]
) -> tuple[int, int, int]:
    """Both channels of a digest, each `(what, send)`, the webhooks first: (rows either
    channel covered, e-mails, webhooks)."""
    posted, hooks = channel_send(org, *webhooks)
    emailed, emails = channel_send(org, *email)
    return len(posted | emailed), emails, hooks


def rows_mark(rows: Sequence[Row], mark: str) -> list[Row]:
    """Set `mark` on `rows` (read under the channel's claim, so the other mark is current),
    and `notified_at` on those both channels now have, which are returned. The caller saves
    `mark` and `notified_at`."""
    now = timezone.now()
    complete = []
    for row in rows:
        setattr(row, mark, now)
        if all(getattr(row, m) is not None for m in MARKS):
            row.notified_at = now
            complete.append(row)
    return complete
