"""Writes for organisations, members, invitations and API keys."""

import logging
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from core.client_address import client_address
from core.exceptions import DomainError, Forbidden, NotFound, Unauthorized
from core.local_cache import LocalCache
from core.rows import row_update

from . import login_throttle
from .models import ApiKey, Invitation, Organization, Role, User, organization_slug_validate
from .origins import api_key_origins_clean
from .queries import secret_digest

if TYPE_CHECKING:
    from rest_framework_simplejwt.tokens import RefreshToken

logger = logging.getLogger(__name__)

# Every ingestion key starts with it, so `Authorization: Bearer …` tells a key from a JWT
# without a lookup (tenants.authentication).
API_KEY_PREFIX = "upk_"


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    try:
        organization_slug_validate(base)
    except ValidationError:
        base = f"org-{base}"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def password_check(*, password: str, user: User | None = None) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise DomainError(exc.messages[0], errors={"password": list(exc.messages)})


@transaction.atomic
def organization_register(*, email: str, password: str, organization_name: str, full_name: str = "") -> User:
    """Self-service sign-up: always a NEW organisation, with the registrant as its admin."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise DomainError("An account with this e-mail already exists.", errors={"email": ["Already registered."]})
    password_check(password=password, user=User(email=email, full_name=full_name))
    org = Organization.objects.create(name=organization_name.strip(), slug=_unique_slug(organization_name))
    return User.objects.create_user(
        email=email, password=password, full_name=full_name, organization=org, role=Role.ADMIN
    )


def organization_update(*, org: Organization, **fields: Any) -> Organization:
    """Changes the given fields only. A slug must stay unique across organisations."""
    slug = fields.get("slug")
    if slug is not None:
        try:
            organization_slug_validate(slug)
        except ValidationError as exc:
            raise DomainError(exc.messages[0], errors={"slug": exc.messages}) from None
    if slug is not None and Organization.objects.filter(slug=slug).exclude(pk=org.pk).exists():
        raise DomainError("This slug is already taken.", errors={"slug": ["Already taken by another organisation."]})
    for name, value in fields.items():
        setattr(org, name, value)
    if fields:
        org.save(update_fields=list(fields))
        # Cached keys carry their organisation (auto_create_features is read on ingestion).
        api_keys_forget()
    return org


# --- Sessions (JWT) ---------------------------------------------------------------------------


def auth_login(*, username: str, password: str, request: HttpRequest | None = None) -> User:
    """The active user with these credentials; one message for every failure so the answer
    does not tell whether an e-mail is registered. Raises LoginThrottled (429) while this
    account or the client's address has failed too often (`login_throttle`)."""
    address = client_address(request)
    login_throttle.login_throttle_check(email=username, address=address)
    user = authenticate(request, username=username.strip(), password=password)
    if user is None:
        login_throttle.login_failure_record(email=username, address=address)
        raise Unauthorized("Incorrect e-mail or password.")
    login_throttle.login_success_record(email=username, address=address)
    update_last_login(User, user)  # the sender, which Django's receiver ignores
    return user


def _refresh_token(raw: str) -> "RefreshToken":
    # simplejwt's imports read settings at import time, so they stay inside the functions.
    from rest_framework_simplejwt.exceptions import TokenError
    from rest_framework_simplejwt.tokens import RefreshToken

    try:
        return RefreshToken(raw)  # type: ignore[arg-type]  # the encoded token; simplejwt annotates it Token
    except TokenError as exc:
        raise Unauthorized(f"Refresh token refused: {exc}.", errors={"refresh": [str(exc)]})


def _token_user(token: "RefreshToken") -> User:
    from rest_framework_simplejwt.settings import api_settings

    user = User.objects.select_related("organization").filter(pk=token.get(api_settings.USER_ID_CLAIM)).first()
    if user is None or not user.is_active:
        raise Unauthorized("The account of this token no longer exists or is inactive.")
    return user


def auth_tokens_issue(*, user: User) -> dict:
    """A refresh/access pair carrying the claims the API and SDKs read: org_id, role, email."""
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = RefreshToken.for_user(user)
    refresh["org_id"] = user.organization_id
    refresh["role"] = user.role
    refresh["email"] = user.email
    access = refresh.access_token  # copies the claims above
    return {
        "access_token": str(access),
        "refresh_token": str(refresh),
        "token_type": "bearer",
        "expires_in": int(access.lifetime.total_seconds()),
    }


def auth_tokens_refresh(*, refresh: str) -> dict:
    """Rotation: the refresh token is spent (blacklisted) and a fresh pair is issued with the
    user's current role and organisation in the claims. Blacklisting with get_or_create makes
    the spend atomic: of two concurrent refreshes with one token only one succeeds."""
    token = _refresh_token(refresh)
    user = _token_user(token)
    with transaction.atomic():
        # get_or_create's (row, created), although simplejwt annotates the row alone.
        _, created = cast("tuple[Any, bool]", token.blacklist())
    if not created:
        raise Unauthorized("Refresh token refused: Token is blacklisted.", errors={"refresh": ["Token is blacklisted"]})
    return auth_tokens_issue(user=user)


def auth_tokens_revoke(*, refresh: str) -> None:
    """Logout: the refresh token can no longer be used (an already spent one is refused
    like any other invalid credential)."""
    token = _refresh_token(refresh)
    with transaction.atomic():
        token.blacklist()


# --- API keys ---------------------------------------------------------------------------


def api_key_create(
    *, org: Organization, name: str, created_by: User | None = None, allowed_origins: Iterable[str] = ()
) -> tuple[ApiKey, str]:
    """Returns the key row and the full key, which is never stored and never shown again."""
    origins = api_key_origins_clean(list(allowed_origins))
    raw = API_KEY_PREFIX + secrets.token_urlsafe(24)[:32]
    api_key = ApiKey.objects.create(
        organization=org,
        name=name,
        prefix=raw[:12],
        key_hash=secret_digest(raw),
        created_by=created_by,
        allowed_origins=origins,
    )
    if origins:
        api_keys_forget()  # the preflight's set of listed origins
    return api_key, raw


def api_key_get(*, org: Organization, key_id: int) -> ApiKey:
    api_key = ApiKey.objects.filter(organization=org, pk=key_id).select_related("created_by").first()
    if api_key is None:
        raise NotFound("API key not found.")
    return api_key


def api_key_origins_set(*, api_key: ApiKey, allowed_origins: object) -> ApiKey:
    """Replaces the web origins allowed to send with `api_key` (from `api_key_get`, so of the
    caller's organisation); empty: server-side only."""
    if not api_key.is_active:
        raise DomainError(
            "This key is revoked; create a new key for the site.",
            errors={"allowed_origins": ["A revoked key cannot be changed."]},
        )
    origins = api_key_origins_clean(allowed_origins)
    api_key = row_update(api_key, missing="API key not found.", allowed_origins=origins)
    api_keys_forget()
    return api_key


# Process-local cache of authenticated keys: the ingestion endpoints authenticate every
# request, and the key lookup was the largest cost of a `track` call. A key revoked here is
# forgotten at once; other processes stop accepting it within API_KEY_CACHE_SECONDS.
api_key_cache = LocalCache(max_entries=10_000)
# The origins listed on any active key, for CORS preflights (which carry no key): one set,
# read at most once per API_KEY_CACHE_SECONDS whatever origins a flood of preflights names.
listed_origins_cache = LocalCache(max_entries=1)


def _caches_clear() -> None:
    api_key_cache.clear()
    listed_origins_cache.clear()


def api_keys_forget() -> None:
    """After a key or an organisation changed: clear now, and again once the change is
    committed, so a request that read the old row meanwhile cannot keep it cached."""
    _caches_clear()
    transaction.on_commit(_caches_clear)


def origin_listed(*, origin: str) -> bool:
    """Whether any active key of any organisation allows `origin` (answers a preflight)."""
    listed = listed_origins_cache.get("origins")
    if listed is None:
        lists = ApiKey.objects.filter(revoked_at__isnull=True).exclude(allowed_origins=[])
        listed = frozenset(o for origins in lists.values_list("allowed_origins", flat=True) for o in origins)
        listed_origins_cache.set_many([("origins", listed)], settings.API_KEY_CACHE_SECONDS)
    return origin in listed


def api_key_authenticate(*, raw_key: str, origin: str | None) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Touches `last_used_at` at most once a
    minute so a busy SDK does not turn every event into an UPDATE.

    `origin` is the `Origin` of a cross-origin browser request (core.cors.request_origin),
    None for a server or a same-origin page: a browser on an origin the key does not list
    is refused (Forbidden, 403), so every caller must say where the request came from."""
    if not raw_key.startswith(API_KEY_PREFIX) or len(raw_key) > 100:
        return None
    digest = secret_digest(raw_key)
    api_key = api_key_cache.get(digest)
    if api_key is None:
        api_key = ApiKey.objects.select_related("organization").filter(key_hash=digest, revoked_at__isnull=True).first()
        if api_key is None:
            return None
        api_key_cache.set_many([(digest, api_key)], settings.API_KEY_CACHE_SECONDS)
    now = timezone.now()
    if origin is not None and not api_key.origin_allowed(origin):
        raise Forbidden(
            f"Origin {origin} may not send with this API key: add it to the key's allowed origins "
            "(Settings → API keys).",
            errors={"origin": [f"{origin} is not among the key's allowed origins."]},
        )
    if api_key.last_used_at is None or now - api_key.last_used_at >= settings.API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_key_revoke(*, org: Organization, key_id: int) -> ApiKey:
    api_key = api_key_get(org=org, key_id=key_id)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    api_keys_forget()
    return api_key


# --- Members and invitations ---------------------------------------------------------------


def last_admins_among(users: Iterable[User]) -> list[User]:
    """Those of `users` whose organisation would have no active admin left without all of
    them. Every path that demotes, deactivates, moves or removes people asks it: the API, the
    Settings pages and the Django admin (QA pass 3, F3).

    It locks the organisations' active admin rows (PostgreSQL) until the caller's transaction
    ends, so two staff demoting each other's fellow admins at the same moment, by any path,
    cannot both see "another admin" and leave none; SQLite's IMMEDIATE transactions serialise."""
    admins = [u for u in users if u.organization_id and u.role == Role.ADMIN and u.is_active]
    leaving = {u.pk for u in admins}
    last = []
    with transaction.atomic(savepoint=False):
        for org_id in sorted({u.organization_id for u in admins if u.organization_id is not None}):
            active = User.objects.select_for_update().filter(organization_id=org_id, role=Role.ADMIN, is_active=True)
            if set(active.values_list("pk", flat=True)) <= leaving:
                last += [u for u in admins if u.organization_id == org_id]
    return last


def member_get(*, org: Organization, user_id: int) -> User:
    member = User.objects.filter(organization=org, pk=user_id).first()
    if member is None:
        raise NotFound("Member not found.")
    return member


@transaction.atomic
def member_change_role(*, org: Organization, user_id: int, role: str) -> User:
    member = member_get(org=org, user_id=user_id)
    if role != Role.ADMIN and last_admins_among([member]):
        raise DomainError(
            "The last admin cannot be demoted; make someone else admin first.",
            errors={"role": ["The organisation needs at least one admin."]},
        )
    return row_update(member, missing="Member not found.", role=role)


@transaction.atomic
def member_remove(*, org: Organization, user_id: int) -> None:
    member = member_get(org=org, user_id=user_id)
    if last_admins_among([member]):
        raise DomainError(
            "The last admin cannot be removed; make someone else admin first.",
            errors={"user": ["The organisation needs at least one admin."]},
        )
    member.delete()


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
