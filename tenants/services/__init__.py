"""Writes for organisations, members, invitations and API keys.

One module per concern: `organizations` (sign-up, settings, the password rules),
`sessions` (sign-in and JWT pairs), `api_keys` (keys, their origins and the key cache),
`members` (roles, removal, the last-admin rule) and `invitations`. Callers import from the
package.
"""

from .api_keys import (
    API_KEY_PREFIX,
    api_key_authenticate,
    api_key_cache,
    api_key_create,
    api_key_get,
    api_key_origins_set,
    api_key_revoke,
    api_keys_forget,
    origin_listed,
)
from .invitations import invitation_accept, invitation_create, invitation_notify, invitation_revoke, invitation_send
from .members import last_admins_among, member_change_role, member_get, member_remove
from .organizations import organization_register, organization_update, password_check
from .sessions import auth_login, auth_tokens_issue, auth_tokens_refresh, auth_tokens_revoke

__all__ = [
    "API_KEY_PREFIX",
    "api_key_authenticate",
    "api_key_cache",
    "api_key_create",
    "api_key_get",
    "api_key_origins_set",
    "api_key_revoke",
    "api_keys_forget",
    "auth_login",
    "auth_tokens_issue",
    "auth_tokens_refresh",
    "auth_tokens_revoke",
    "invitation_accept",
    "invitation_create",
    "invitation_notify",
    "invitation_revoke",
    "invitation_send",
    "last_admins_among",
    "member_change_role",
    "member_get",
    "member_remove",
    "organization_register",
    "organization_update",
    "origin_listed",
    "password_check",
]
