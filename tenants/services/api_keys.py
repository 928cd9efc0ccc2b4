"""Ingestion API keys: their creation (the full key is shown once), their allowed web origins,
their revocation, and the authentication of every ingestion request through a process-local
cache of keys."""

import secrets
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.exceptions import DomainError, Forbidden, NotFound
from core.local_cache import LocalCache
from core.rows import row_update

from ..models import ApiKey, Organization, User
from ..origins import api_key_origins_clean
from ..queries import secret_digest

# Every ingestion key starts with it, so `Authorization: Bearer …` tells a key from a JWT
# without a lookup (tenants.authentication).
API_KEY_PREFIX = "upk_"


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
        # Its organisation's deletion revokes its keys; one made since (staff acting on it
        # through the API) is refused all the same.
        api_key = (
            ApiKey.objects.select_related("organization")
            .filter(key_hash=digest, revoked_at__isnull=True, organization__deletion_requested_at__isnull=True)
            .first()
        )
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
