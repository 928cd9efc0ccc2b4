"""Person updates and account updates in the ingestion pass, beside a request's events.

SDKs send them as calls of their own (PostHog `$set`/`$set_once`/`$identify` and
`$groupidentify`, Segment `identify` and `group`); `telemetry.compat` maps them to

- person updates `{index, user_id, timestamp?, email?, age?, gender?, properties?,
  once?: {email?, age?, gender?, properties?}, account_id?}`: folded into the request's
  end-user rows (`once` holds `$set_once` values, written only where the user has none), so
  they reach the database through the same upsert as the events' end users, directly or
  through the queue;
- account updates `{index, account_id, name?, properties?}`.

Each is checked by the event pass's own field validators, and its errors name its `index`.
"""

from .validate import EventCheck, user_touch
from .values import text_error


def people_validate(check: EventCheck, people, accounts) -> tuple[set, list]:
    """Check and fold `people` into `check.users`; returns (the external ids they touch, the
    valid account rows `{external_id, name, properties}`)."""
    touched = set()
    for update in people:
        external_id = _person(check, update)
        if external_id is not None:
            touched.add(external_id)
    account_rows = []
    for update in accounts:
        row = _account(check, update)
        if row is not None:
            account_rows.append(row)
    return touched, account_rows


def _person(check, update):
    check.index = update["index"]
    errors_before = len(check.errors)
    user_id = update.get("user_id")
    external_id = check.user_id(user_id)
    if external_id is None and user_id is None:
        check.error("user_id", "Required: the end user to update.")
    ts = check.timestamp(update.get("timestamp"))
    account = update.get("account_id")
    if account is not None:
        account = check.account_of(account, user_id)
    attrs = check.user_attributes(update, account)
    once = update.get("once")
    if once:
        once = check.user_attributes(once)
    if len(check.errors) > errors_before or attrs is None:
        return None
    if once:
        attrs["once"] = once
    user_touch(check.users, external_id, attrs, ts)
    return external_id


def _account(check, update):
    check.index = update["index"]
    errors_before = len(check.errors)
    external_id = check.external_id("account_id", update.get("account_id"))
    if external_id is None and len(check.errors) == errors_before:
        check.error("account_id", "Required: your id of the account.")
    name = update.get("name")
    if name is not None and (message := text_error(name, 200)):
        check.error("name", message)
    properties = check.properties(update.get("properties"))
    if len(check.errors) > errors_before:
        return None
    return {"external_id": external_id, "name": name or "", "properties": properties or {}}
