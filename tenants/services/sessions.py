"""Sessions of people (JWT): sign-in, and the refresh/access token pairs it issues, rotates
and revokes."""

from typing import TYPE_CHECKING, Any, cast

from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.db import transaction
from django.http import HttpRequest

from core.client_address import client_address
from core.exceptions import Unauthorized

from .. import login_throttle
from ..models import User

if TYPE_CHECKING:
    from rest_framework_simplejwt.tokens import RefreshToken


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
