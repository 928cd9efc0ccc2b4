"""Webhooks: CRUD, URL safety, signing and one delivery attempt.

Signature recipe (documented in the README for receivers):

    body      = the raw request body (UTF-8 JSON); it contains "timestamp" (Unix seconds)
    X-Timestamp: the same Unix seconds
    X-Signature: "sha256=" + hex(HMAC-SHA256(key=secret, msg=body))

A receiver recomputes the HMAC over the raw bytes it received, compares with
`hmac.compare_digest`, then checks that X-Timestamp equals the body's "timestamp" and is
within five minutes of its clock (the timestamp is inside the signed body, so a replayed
request cannot carry a fresh one).
"""

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from core.exceptions import DomainError, NotFound
from core.rows import row_update
from core.task_queue import task_send_on_commit_or_later
from tenants.models import Organization

from . import outbound, slack
from .models import Webhook, WebhookDelivery

EVENTS = tuple(Webhook.Event.values)
USER_AGENT = "UsagePlatform-Webhooks/1"
# The Celery task that makes one delivery attempt (insights.tasks); sent by name because
# the tasks import this module.
DELIVER_TASK = "insights.deliver_webhook"


# --- URL safety -------------------------------------------------------------------------


def url_check(url: str) -> str:
    """Raise DomainError (400, field `url`) unless `url` is http(s) and every address its
    host resolves to is public (`outbound.address_is_public`: IPv6 forms of private space
    included). settings.WEBHOOK_ALLOW_PRIVATE lifts the address rule (local development and
    tests); the scheme rule always holds. Deliveries check again (DNS answers change)."""

    def refuse(message: str) -> NoReturn:
        raise DomainError(message, errors={"url": [message]})

    url = (url or "").strip()
    if not url:
        refuse("A webhook URL is required.")
    if len(url) > 500:
        refuse("The URL is longer than 500 characters.")
    try:
        parts = urlsplit(url)
    except ValueError:
        # An unclosed or invalid bracketed host ("http://[::1") makes urlsplit raise.
        refuse("The URL is not valid.")
    if parts.scheme not in ("http", "https"):
        refuse("Only http and https URLs are allowed.")
    if not parts.hostname:
        refuse("The URL has no host.")
    if parts.username or parts.password:
        refuse("Credentials in the URL are not allowed; use the signing secret.")
    try:
        if parts.port == 0:
            refuse("The URL's port is invalid.")
    except ValueError:
        refuse("The URL's port is invalid.")
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return url
    try:
        outbound.target_resolve(url, allow_private=False)
    except (outbound.Unresolvable, outbound.AddressRefused) as exc:
        refuse(str(exc))
    return url


def _events_check(events: object) -> list[str]:
    if not isinstance(events, list | tuple) or not events:
        raise DomainError("Choose at least one event.", errors={"events": [f"Choose from {', '.join(EVENTS)}."]})
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        raise DomainError(
            f"Unknown event: {unknown[0]}.", errors={"events": [f"Unknown event {unknown[0]!r}; use {EVENTS}."]}
        )
    return sorted(set(events))


# --- CRUD ---------------------------------------------------------------------------------


def webhook_list(org: Organization) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization=org).order_by("-created_at", "-id")


def webhook_list_with_deliveries(org: Organization, *, recent: int) -> list[Webhook]:
    """`webhook_list`, each webhook with its `recent` latest deliveries in `recent_deliveries`:
    two queries whatever the number of webhooks (the deliveries in one windowed query)."""
    latest = WebhookDelivery.objects.order_by("-created_at", "-id")[:recent]
    return list(
        webhook_list(org).prefetch_related(Prefetch("deliveries", queryset=latest, to_attr="recent_deliveries"))
    )


def webhook_get(org: Organization, webhook_id: int) -> Webhook:
    webhook = Webhook.objects.filter(organization=org, pk=webhook_id).first()
    if webhook is None:
        raise NotFound("Webhook not found.")
    return webhook


def _format_check(format: object) -> str:
    if format not in Webhook.Format.values:
        message = f"Choose a format from {', '.join(Webhook.Format.values)}."
        raise DomainError(message, errors={"format": [message]})
    return str(format)


def webhook_create(
    org: Organization, *, url: str, events: object, active: bool = True, format: object = Webhook.Format.SIGNED_JSON
) -> Webhook:
    """The returned row carries the secret; callers show it once (it is never listed)."""
    webhook = Webhook.objects.create(
        organization=org,
        url=url_check(url),
        events=_events_check(events),
        format=_format_check(format),
        active=bool(active),
        secret="whsec_" + secrets.token_urlsafe(32),
    )
    return webhook


def webhook_update(org: Organization, webhook_id: int, **fields: Any) -> Webhook:
    webhook = webhook_get(org, webhook_id)
    changes: dict[str, Any] = {}
    if "url" in fields:
        changes["url"] = url_check(fields["url"])
    if "events" in fields:
        changes["events"] = _events_check(fields["events"])
    if "format" in fields:
        changes["format"] = _format_check(fields["format"])
    if "active" in fields:
        changes["active"] = bool(fields["active"])
    return row_update(webhook, missing="Webhook not found.", **changes)


def webhook_delete(org: Organization, webhook_id: int) -> None:
    webhook_get(org, webhook_id).delete()


def webhook_deliveries(org: Organization, webhook_id: int) -> QuerySet[WebhookDelivery]:
    webhook = webhook_get(org, webhook_id)
    return WebhookDelivery.objects.filter(webhook=webhook).order_by("-created_at", "-id")


def webhooks_for_event(org: Organization, event: str) -> list[Webhook]:
    # JSON containment differs between SQLite and PostgreSQL; the list per organisation is
    # short, so filter in Python.
    return [w for w in Webhook.objects.filter(organization=org, active=True) if event in (w.events or [])]


# --- Signing and delivery -----------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_verify(secret: str, body: bytes, signature: str, timestamp: str, *, tolerance: int = 300) -> bool:
    """The receiver's side of the recipe, used by the tests and quoted in the README."""
    if not hmac.compare_digest(sign(secret, body), signature or ""):
        return False
    try:
        sent = int(json.loads(body)["timestamp"])
    except (ValueError, KeyError, TypeError):
        return False
    return str(sent) == str(timestamp) and abs(time.time() - sent) <= tolerance


def request_build(
    webhook: Webhook, event: str, payload: dict[str, Any], *, delivery_id: str
) -> tuple[bytes, dict[str, str]]:
    timestamp = int(time.time())
    # A Slack-format webhook gets the chat message as its whole body (Slack refuses unknown
    # envelopes); the signature headers still cover it.
    document = (
        slack.slack_message(event, payload)
        if webhook.format == Webhook.Format.SLACK
        else {"id": delivery_id, "event": event, "timestamp": timestamp, "data": payload}
    )
    body = json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Event": event,
        "X-Delivery": delivery_id,
        "X-Timestamp": str(timestamp),
        "X-Signature": sign(webhook.secret, body),
    }
    return body, headers


def backoff_seconds(attempt: int) -> int:
    """WEBHOOK_BACKOFF_SECONDS (30 s) after the first attempt, then doubling: 60 s, 120 s, …
    capped at one hour."""
    return min(settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1), 3600)


def webhook_deliver(delivery: WebhookDelivery) -> WebhookDelivery | None:
    """One POST of a claimed attempt (`attempt_claim`), its outcome written on its row. 2xx is
    success; 4xx other than 408/429 is final; network errors, timeouts, 5xx and anything
    else that stops the attempt are retried until WEBHOOK_MAX_ATTEMPTS: returns the next
    attempt's row then (queued, due after the back-off; `deliveries_resend` sends it should
    its message be lost), else None."""
    webhook = delivery.webhook
    body, headers = request_build(webhook, delivery.event, delivery.payload, delivery_id=delivery.delivery_id)
    status_code: int | None = None
    error = ""
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    try:
        # One lookup per attempt, every address checked, and the connection made to a checked
        # address: a second lookup could answer 127.0.0.1 (DNS rebinding).
        target = outbound.target_resolve(webhook.url, allow_private=allow_private)
        status_code = outbound.http_post_pinned(
            target, body, headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS, allow_private=allow_private
        )
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except outbound.AddressRefused as exc:
        error = f"refused: {exc}"
    except outbound.Unresolvable as exc:
        # Name servers fail transiently too: retried like a network error.
        error = f"unresolvable: {exc}"
    except Exception as exc:  # noqa: BLE001 - a network error, or the task's soft time limit
        # Whatever stopped it, the attempt is recorded and the next one queued: an attempt
        # left claimed without an outcome is only retried after its lease.
        error = f"{type(exc).__name__}: {exc}"
    ok = status_code is not None and 200 <= status_code < 300
    transient = not error.startswith("refused") and (
        status_code is None or status_code >= 500 or status_code in (408, 429)
    )
    return _outcome_record(delivery, status_code=status_code, error=error, ok=ok, transient=transient)


def _outcome_record(
    delivery: WebhookDelivery, *, status_code: int | None, error: str, ok: bool, transient: bool
) -> WebhookDelivery | None:
    """Write an attempt's outcome on its row, while this worker still holds its claim, and
    queue the next attempt when the failure is transient and attempts are left: returns it."""
    retry = not ok and transient and delivery.attempt < settings.WEBHOOK_MAX_ATTEMPTS
    now = timezone.now()
    due = now + timedelta(seconds=backoff_seconds(delivery.attempt)) if retry else None
    outcome = {
        "status_code": status_code,
        # PostgreSQL text takes no NUL (a receiver's status line may carry one).
        "error": error.replace("\x00", "")[:500],
        "delivered_at": now if ok else None,
        "next_attempt_at": due,
    }
    with transaction.atomic():
        # Fenced by the claim: a worker that outlived its lease, whose attempt another has
        # since taken over (`attempt_abandon`), records nothing and queues nothing. Gone too
        # when the webhook was deleted meanwhile.
        recorded = WebhookDelivery.objects.filter(
            pk=delivery.pk, attempted_at=delivery.attempted_at, **_NO_OUTCOME
        ).update(**outcome)
        for name, value in outcome.items():
            setattr(delivery, name, value)
        if not recorded or not retry:
            return None
        return WebhookDelivery.objects.create(
            webhook_id=delivery.webhook_id,
            event=delivery.event,
            payload=delivery.payload,
            attempt=delivery.attempt + 1,
            delivery_id=delivery.delivery_id,
            next_attempt_at=due,
        )


# --- The outbox ---------------------------------------------------------------------------
# Every attempt is a row before it is a message: queued in the transaction that decided to
# send (`webhook_enqueue`), its message sent once that commits. A broker out of reach then,
# or a message lost with a Redis restart, leaves the row queued, and `deliveries_resend`
# (the beat's `insights.webhook_deliveries_resend`) sends it again; a message delivered twice
# (the resend racing a slow queue, a redelivery) finds its row claimed. An attempt whose
# worker stopped during it (killed at the task's time limit) is closed as failed after its
# lease and the next one queued: attempts stay counted, WEBHOOK_MAX_ATTEMPTS still stops them.

# A queued attempt whose message has not run this long after it was due (or was last sent
# again) is sent again.
RESEND_AFTER = timedelta(minutes=5)
# A claimed attempt without an outcome this long after its claim (the task's time limit is
# 2 minutes) is taken to have lost its worker.
ATTEMPT_LEASE = timedelta(minutes=10)
WORKER_LOST = "no answer recorded: the worker stopped during the attempt"
_NO_OUTCOME = {"delivered_at__isnull": True, "status_code__isnull": True, "error": ""}


def attempt_claim(delivery_pk: int) -> WebhookDelivery | None:
    """The queued attempt `delivery_pk`, now claimed for this worker (one conditional UPDATE:
    a second message of it finds it taken), or None: made already, being made, or gone. The
    attempt of a paused webhook is closed unsent."""
    now = timezone.now()
    if not WebhookDelivery.objects.filter(pk=delivery_pk, attempted_at__isnull=True, **_NO_OUTCOME).update(
        attempted_at=now
    ):
        return None
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_pk).first()
    if delivery is None:  # its webhook deleted since
        return None
    if not delivery.webhook.active:
        WebhookDelivery.objects.filter(pk=delivery_pk).update(
            error="not sent: the webhook is paused", next_attempt_at=None
        )
        return None
    return delivery


def attempt_queue_sent_before(
    *, webhook_id: int, event: str, payload: dict[str, Any], attempt: int = 1, delivery_id: str = ""
) -> int | None:
    """The row of an attempt whose message was sent by the release before the outbox (its
    kwargs were the attempt itself), queued now, or found when the message comes twice;
    None when its webhook is gone or paused."""
    webhook = Webhook.objects.filter(pk=webhook_id, active=True).first()
    if webhook is None:
        return None
    if delivery_id:
        known = WebhookDelivery.objects.filter(webhook=webhook, delivery_id=delivery_id, attempt=attempt).first()
        if known is not None:
            return known.pk
    # That release wrote an attempt's row once it was made, without the delivery id (those
    # rows have none): a message it sent, run by a worker that stopped before acknowledging
    # it, finds its attempt by what it was.
    made = (
        WebhookDelivery.objects.filter(webhook=webhook, delivery_id="", event=event, attempt=attempt, payload=payload)
        .order_by("pk")
        .first()
    )
    if made is not None:
        if delivery_id:
            WebhookDelivery.objects.filter(pk=made.pk).update(delivery_id=delivery_id)
        return made.pk
    return _attempt_queue(webhook, event, payload, attempt=attempt, delivery_id=delivery_id).pk


def attempt_abandon(delivery_pk: int) -> WebhookDelivery | None:
    """Close an attempt claimed longer than ATTEMPT_LEASE ago without an outcome as failed
    (`WORKER_LOST`) and queue the next one, returned (None when none is left, or the
    attempt was closed meanwhile)."""
    lease_start = timezone.now() - ATTEMPT_LEASE
    delivery = (
        WebhookDelivery.objects.filter(pk=delivery_pk, attempted_at__lt=lease_start, **_NO_OUTCOME)
        .select_related("webhook")
        .first()
    )
    if delivery is None:
        return None
    return _outcome_record(delivery, status_code=None, error=WORKER_LOST, ok=False, transient=True)


def deliveries_resend(*, limit: int = 1000) -> list[int]:
    """The attempts whose message was lost, to send again: those queued and due for longer
    than RESEND_AFTER (each then counts as sent now, so a backlog of busy workers gets one
    more message per RESEND_AFTER, not one per run), and the next attempts of those whose
    worker stopped (`attempt_abandon`). Oldest first, at most `limit` of each (the rest at
    the next run)."""
    now = timezone.now()
    queued = WebhookDelivery.objects.filter(
        attempted_at__isnull=True, next_attempt_at__lt=now - RESEND_AFTER, **_NO_OUTCOME
    ).order_by("next_attempt_at")
    lost = list(queued.values_list("pk", flat=True)[:limit])
    WebhookDelivery.objects.filter(pk__in=lost, attempted_at__isnull=True).update(next_attempt_at=now)
    stalled = WebhookDelivery.objects.filter(attempted_at__lt=now - ATTEMPT_LEASE, **_NO_OUTCOME).order_by(
        "next_attempt_at"
    )
    for delivery_pk in list(stalled.values_list("pk", flat=True)[:limit]):
        following = attempt_abandon(delivery_pk)
        if following is not None:
            lost.append(following.pk)
    return lost


def attempts_due_in(delivery_pks: list[int]) -> list[tuple[int, float | None]]:
    """Each of the attempts `delivery_pks` with the seconds until it is due (None: due now):
    the countdown of its message, so that an attempt queued after a stalled one still waits
    its back-off."""
    now = timezone.now()
    due = dict(WebhookDelivery.objects.filter(pk__in=delivery_pks).values_list("pk", "next_attempt_at"))
    waits = {pk: (at - now).total_seconds() if at is not None else 0.0 for pk, at in due.items()}
    return [(pk, waits[pk] if waits[pk] > 0 else None) for pk in delivery_pks if pk in waits]


def webhooks_send(org: Organization, event: str, payload: Callable[[], dict[str, Any]]) -> int:
    """Queue `event` to every active webhook of `org` subscribed to it, with `payload()`
    (built only when one is); returns how many."""
    hooks = webhooks_for_event(org, event)
    if hooks:
        body = payload()
        for webhook in hooks:
            webhook_enqueue(webhook, event, body)
    return len(hooks)


def webhook_enqueue(webhook: Webhook, event: str, payload: dict[str, Any]) -> str:
    """Queue one event for `webhook`: its first attempt's row in the current transaction, its
    message sent once that commits (a change that rolls back delivers nothing; a broker out
    of reach then is logged and the outbox sends it later). Returns the delivery id every
    attempt carries."""
    delivery = _attempt_queue(webhook, event, payload, attempt=1)
    task_send_on_commit_or_later(DELIVER_TASK, delivery_pk=delivery.pk)
    return delivery.delivery_id


def _attempt_queue(
    webhook: Webhook, event: str, payload: dict[str, Any], *, attempt: int, delivery_id: str = ""
) -> WebhookDelivery:
    """An attempt's row, queued and due now (a new delivery id unless it continues one)."""
    return WebhookDelivery.objects.create(
        webhook=webhook,
        event=event,
        payload=payload,
        attempt=attempt,
        delivery_id=delivery_id or secrets.token_hex(12),
        next_attempt_at=timezone.now(),
    )
