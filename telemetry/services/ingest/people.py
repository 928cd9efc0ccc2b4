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

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .end_users import user_touch
from .validate import EventCheck
from .values import text_error


def people_validate(
    check: EventCheck, people: Iterable[dict[str, Any]], accounts: Iterable[dict[str, Any]]
) -> tuple[set[str], list[dict[str, Any]]]:
    """Check `people` and `accounts`, then fold the people into `check.users`; returns (the
    external ids they touch, the valid account rows `{external_id, name, properties}`).

    A message is taken whole or not at all: an update whose index has an error anywhere (its
    event, another update of the same message) is dropped, and the caller drops the events
    of the indices that failed here."""
    checked = [(update["index"], _person(check, update)) for update in people]
    account_rows = [(update["index"], _account(check, update)) for update in accounts]
    rejected = {error["index"] for error in check.errors}
    touched = set()
    for index, person in checked:
        if person is not None and index not in rejected:
            external_id, attrs, ts = person
            user_touch(check.users, external_id, attrs, ts)
            touched.add(external_id)
    return touched, [row for index, row in account_rows if row is not None and index not in rejected]


def _person(check: EventCheck, update: dict[str, Any]) -> tuple[str, dict[str, Any], datetime] | None:
    """(external id, upsert attributes, time) of a valid person update, else None."""
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
    if len(check.errors) > errors_before or attrs is None or external_id is None or ts is None:
        return None
    if once:
        attrs["once"] = once
    return external_id, attrs, ts


def _account(check: EventCheck, update: dict[str, Any]) -> dict[str, Any] | None:
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
