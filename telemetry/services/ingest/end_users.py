"""The request's end-user rows: the events, SDK events and person updates of one request
fold their end users' attributes into one row per end user (`user_touch`), which reaches
the database through a single upsert, directly or through the queue."""

from datetime import datetime
from typing import Any

from ..storage.end_users import once_merged


def user_touch(users: dict[str, dict[str, Any]], external_id: str, attrs: dict[str, Any], ts: datetime) -> None:
    """Fold one event's or person update's attributes into the request's row for that end
    user: later values win, `$set_once` values (`once`) the first, the seen span widens."""
    cur = users.get(external_id)
    if cur is None:
        attrs["external_id"] = external_id
        attrs["first_seen"] = attrs["last_seen"] = ts
        users[external_id] = attrs
        return
    if ts < cur["first_seen"]:
        cur["first_seen"] = ts
    elif ts > cur["last_seen"]:
        cur["last_seen"] = ts
    if len(attrs) > 0:
        props = attrs.pop("properties", None)
        once = attrs.pop("once", None)
        cur.update(attrs)
        if props:
            cur["properties"] = {**cur.get("properties", {}), **props}
        if once:
            cur["once"] = once_merged(cur.get("once"), once)
