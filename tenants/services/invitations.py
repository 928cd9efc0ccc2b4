"""Invitations to join an organisation: created with a one-time token (only its hash is
stored), e-mailed, revoked, and accepted by choosing a password."""

import logging
import secrets
from collections.abc import Callable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from core.exceptions import DomainError, NotFound

from ..models import Invitation, Organization, User
from ..queries import secret_digest
from .organizations import password_check

logger = logging.getLogger(__name__)


def invitation_create(*, org: Organization, email: str, role: str, invited_by: User | None) -> tuple[Invitation, str]:
    """Returns the invitation and its one-time token (only the hash is stored)."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise DomainError("This e-mail already has an account.", errors={"email": ["Already registered."]})
    # A new invitation replaces any pending one for the same address, so only the latest
    # link works.
    Invitation.objects.filter(
        organization=org, email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=org,
        email=email,
        role=role,
        token_hash=secret_digest(token),
        invited_by=invited_by,
        expires_at=timezone.now() + settings.INVITATION_TTL,
    )
    return invitation, token


def invitation_send(
    *, org: Organization, email: str, role: str, invited_by: User | None, accept_url_for: Callable[[str], str | None]
) -> tuple[Invitation, str, str | None]:
    """Create an invitation and e-mail its link: `(invitation, token, accept_url)`.
    `accept_url_for(token)` builds the link (the caller knows the host), or gives None."""
    invitation, token = invitation_create(org=org, email=email, role=role, invited_by=invited_by)
    accept_url = accept_url_for(token)
    invitation_notify(invitation=invitation, accept_url=accept_url)
    return invitation, token, accept_url


def invitation_revoke(*, org: Organization, invitation_id: int) -> None:
    invitation = Invitation.objects.filter(organization=org, pk=invitation_id).first()
    if invitation is None:
        raise NotFound("Invitation not found.")
    if invitation.revoked_at is None and invitation.accepted_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])


@transaction.atomic
def invitation_accept(*, token: str, password: str, full_name: str = "") -> User:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("organization")
        .filter(token_hash=secret_digest(token))
        .first()
    )
    if invitation is None:
        raise NotFound(
            "No invitation matches this token; check the link or ask your admin for a new one.",
            errors={"token": ["Unknown invitation token."]},
        )
    state = invitation.status
    if state != "pending":
        message = {
            "accepted": "This invitation has already been used; log in instead.",
            "revoked": "This invitation was withdrawn by the organisation's admin.",
            "expired": "This invitation has expired; ask your admin for a new one.",
        }[state]
        raise DomainError(message, errors={"token": [f"Invitation {state}."]})
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise DomainError("This e-mail already has an account.", errors={"email": ["Already registered."]})
    password_check(password=password, user=User(email=invitation.email, full_name=full_name))
    user = User.objects.create_user(
        email=invitation.email,
        password=password,
        full_name=full_name,
        organization=invitation.organization,
        role=invitation.role,
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    return user


def invitation_notify(*, invitation: Invitation, accept_url: str | None) -> None:
    """E-mails the invitation link. The API response carries the link too, so a mail server
    that is down is logged, not fatal."""
    if not accept_url:
        return
    body = (
        f"You have been invited to join {invitation.organization.name} on Usage Platform as {invitation.role}.\n\n"
        f"Accept the invitation and choose a password: {accept_url}\n\n"
        f"The link expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
    )
    try:
        send_mail(
            f"Invitation to {invitation.organization.name}",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [invitation.email],
        )
    except Exception:  # the link is in the API response; a mail outage must not undo the invite
        logger.exception("could not e-mail invitation %s", invitation.pk)
