"""Credentials of the schemathesis run (loaded with SCHEMATHESIS_HOOKS by `run.py`).

Every operation runs as the seeded organisation's admin (a JWT) except `events/*`, which run
with an ingestion key, as SDKs call them. Both are fetched from the API itself, so the run
survives its own destructive cases: the JWT is renewed by logging in again (well inside its
15 minutes), and when a fuzzed `DELETE /org/api-keys/{key_id}` revokes the run's key, the
next `events/*` answer is a 401 and a new key is created.

The one thing the run may not do is remove or demote its own admin: once the fuzzer has
promoted another member, `DELETE`/`PATCH /org/members/{the admin's id}` would succeed and
every later case would test only the 401 (the last-admin rule and member removal are
covered by tenants/tests/test_org_api.py). Those cases, and only those, are filtered out.
"""

import os

import requests
import schemathesis

BASE_URL = os.environ["UP_BASE_URL"]
EVENTS = r"^/api/v1/events/"


def _admin_token() -> str:
    response = requests.post(
        f"{BASE_URL}/api/v1/auth/login",
        json={"username": os.environ["UP_ADMIN_EMAIL"], "password": os.environ["UP_ADMIN_PASSWORD"]},
        timeout=30,
    )
    response.raise_for_status()
    return response.json()["access_token"]


# No re-login on a 401: `auth/refresh`, `auth/logout` and fuzzed credentials answer 401 by
# design, and the token itself outlives the refresh interval.
@schemathesis.auth(refresh_interval=300, retry_on=[]).skip_for(path_regex=EVENTS)
class AdminJWT:
    def get(self, case, context):
        return _admin_token()

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.auth(refresh_interval=3600, retry_on=[401]).apply_to(path_regex=EVENTS)
class IngestionKey:
    def get(self, case, context):
        if not getattr(self, "created", False):
            # The seeded key first; later calls mean it was revoked mid-run.
            self.created = True
            return os.environ["UP_API_KEY"]
        response = requests.post(
            f"{BASE_URL}/api/v1/org/api-keys",
            json={"name": "schemathesis (re-created)"},
            headers={"Authorization": f"Bearer {_admin_token()}"},
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["key"]

    def set(self, case, data, context):
        case.headers = {**(case.headers or {}), "X-API-Key": data}


@schemathesis.hook("map_case").apply_to(path_regex=EVENTS)
def own_org_id(context, case):
    """`org_id` must name the caller's organisation, anything else is a 403 (covered by
    telemetry's tests): schema-valid cases get the run's own, so that they reach ingestion."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    items = case.body.get("events") if isinstance(case.body, dict) and "events" in case.body else [case.body]
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and "org_id" in item:
            item["org_id"] = int(os.environ["UP_ORG_ID"])
    return case


@schemathesis.hook("filter_case").apply_to(path="/api/v1/org/members/{member_id}", method=["DELETE", "PATCH"])
def keep_the_runs_admin(context, case):
    return str((case.path_parameters or {}).get("member_id")) != os.environ["UP_ADMIN_ID"]
