"""One end user: the profile, totals and top features, and the timeline of visits, read from
that user's own events (one index range of the (organization, end user, timestamp) index)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db.models import Avg, Count, Max, Min, Q
from django.utils import timezone

from core.exceptions import DomainError, NotFound
from telemetry.models import EndUser, UsageEvent
from tenants.models import Organization, User

from .cache import through_cache
from .common import rounded_or_none

TIMELINE_LIMIT = 200
# A user last seen longer ago than this is settled: what their events show is cached
# (`end_user_detail`), for at most SETTLED_CACHE_SECONDS.
SETTLED_AFTER = timedelta(hours=1)
SETTLED_CACHE_SECONDS = 60
# Events of one end user without a session id belong to the same visit while they are
# less than this far apart (the usual web-analytics session timeout).
SESSION_GAP = timedelta(minutes=30)


def _session_groups(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest-first events (`_TIMELINE_FIELDS` rows) → visits: consecutive events sharing a
    session id, or without one and less than SESSION_GAP apart."""
    groups: list[dict[str, Any]] = []
    for e in events:
        last = groups[-1] if groups else None
        session_id, timestamp = e["session_id"], e["timestamp"]
        same = (
            last is not None
            and last["session_id"] == session_id
            and (session_id or last["start"] - timestamp <= SESSION_GAP)
        )
        item = {
            "uuid": e["uuid"],
            "timestamp": timestamp,
            "feature_key": e["feature__key"],
            "feature_name": e["feature__name"],
            "event_type": e["event_type"],
            "session_duration": e["session_duration"],
        }
        if same and last is not None:
            last["events"].append(item)
            last["start"] = timestamp
        else:
            groups.append({"session_id": session_id, "start": timestamp, "end": timestamp, "events": [item]})
    for g in groups:
        g["event_count"] = len(g["events"])
    return groups


def end_user_is_own(org: Organization, external_id: str, member: User) -> bool:
    """Whether end user `external_id` of `org` is the own profile of the platform `member`."""
    if "\x00" in external_id:  # never stored (ingestion refuses it); PostgreSQL cannot compare it
        return False
    return EndUser.objects.filter(organization=org, external_id=external_id, member=member).exists()


def _end_user(org: Organization, external_id: str) -> EndUser:
    if "\x00" in external_id:  # never stored (ingestion refuses it); PostgreSQL cannot compare it
        raise NotFound("End user not found.")
    user = EndUser.objects.filter(organization=org, external_id=external_id).first()
    if user is None:
        raise NotFound("End user not found.")
    return user


_TIMELINE_FIELDS = (
    "uuid",
    "timestamp",
    "session_id",
    "event_type",
    "session_duration",
    "feature__key",
    "feature__name",
)


def _timeline_page(org: Organization, user: EndUser, before: UUID | None) -> dict[str, Any]:
    """Up to TIMELINE_LIMIT events of `user`, newest first, older than the event `before`
    (an event uuid, as `timeline_next` gives it) when given, grouped into sessions.

    Paged by key (timestamp, id), so a page costs the same however far back it is. A session
    cut by a page boundary goes on at the top of the next page, marked `continued`."""
    events = UsageEvent.objects.filter(organization=org, end_user=user)
    # Plain rows, not model instances: a page of 200 events (and their features) built as
    # instances cost more than the index range that reads them.
    page = events.order_by("-timestamp", "-id").values(*_TIMELINE_FIELDS)
    cursor = None
    if before is not None:
        cursor = events.filter(uuid=before).values("timestamp", "id", "session_id").first()
        if cursor is None:
            raise DomainError(
                "before: no event of this user has this id.", errors={"before": ["Unknown event for this user."]}
            )
        ts = cursor["timestamp"]
        page = page.filter(Q(timestamp__lt=ts) | Q(timestamp=ts, id__lt=cursor["id"]))
    rows = list(page[: TIMELINE_LIMIT + 1])
    more = len(rows) > TIMELINE_LIMIT
    rows = rows[:TIMELINE_LIMIT]
    groups = _session_groups(rows)
    for group in groups:
        group["continued"] = False
    if cursor is not None and groups:
        first = rows[0]
        groups[0]["continued"] = first["session_id"] == cursor["session_id"] and bool(
            first["session_id"] or cursor["timestamp"] - first["timestamp"] <= SESSION_GAP
        )
    return {
        "timeline": groups,
        "timeline_events": len(rows),
        "timeline_next": str(rows[-1]["uuid"]) if more else None,
    }


def end_user_timeline(org: Organization, external_id: str, *, before: UUID | None = None) -> dict[str, Any]:
    """One page of the timeline alone (`_timeline_page`): what "Older events" loads."""
    return _timeline_page(org, _end_user(org, external_id), before)


def end_user_detail(org: Organization, external_id: str, *, before: UUID | None = None) -> dict[str, Any]:
    """Profile, totals, top features and a page of the timeline (`_timeline_page`): the
    newest events grouped into sessions, or those older than the event `before`.

    The profile is read on every call. What comes from the events is read afresh for a user
    seen within SETTLED_AFTER or never (their events may be arriving) and for older pages;
    for the others it is cached for up to SETTLED_CACHE_SECONDS, under the organisation's
    rollup generation and the user's `last_seen`: an event a minute or more newer than that
    moves it (and so the key), and a rollup drops the entry with the organisation's other
    cached figures. Any other event of theirs (an older one, or one stored in the moment
    between their profile's write and their events') shows within that minute."""
    user = _end_user(org, external_id)
    if before is None and user.last_seen is not None and user.last_seen < timezone.now() - SETTLED_AFTER:
        parts = repr((user.pk, user.last_seen))
        events = through_cache(
            org, "end_user_events", parts, lambda: _events_of(org, user, None), SETTLED_CACHE_SECONDS
        )
    else:
        events = _events_of(org, user, before)
    return {
        "user_id": user.external_id,
        "email": user.email,
        "age": user.age,
        "gender": user.gender,
        "properties": user.properties,
        "first_seen": user.first_seen or events["first_event"],
        "last_seen": user.last_seen or events["last_event"],
        "totals": events["totals"],
        "top_features": events["top_features"],
        "timeline": events["timeline"],
        "timeline_events": events["timeline_events"],
        "timeline_next": events["timeline_next"],
    }


def _events_of(org: Organization, user: EndUser, before: UUID | None) -> dict[str, Any]:
    """What `end_user_detail` reads from the user's own events (one index range of the
    (organization, end user, timestamp) index): totals, first and last event, top features
    and a page of the timeline."""
    events = UsageEvent.objects.filter(organization=org, end_user=user)
    totals = events.aggregate(
        events=Count("id"),
        sessions=Count("session_id", distinct=True, filter=~Q(session_id="")),
        avg_session_duration=Avg("session_duration"),
        features_used=Count("feature_id", distinct=True),
        first_event=Min("timestamp"),
        last_event=Max("timestamp"),
    )
    top = list(
        events.values("feature_id", "feature__key", "feature__name")
        .annotate(events=Count("id"))
        .order_by("-events", "feature__key")[:5]
    )
    return {
        "first_event": totals["first_event"],
        "last_event": totals["last_event"],
        "totals": {
            "events": totals["events"],
            "sessions": totals["sessions"],
            "avg_session_duration": rounded_or_none(totals["avg_session_duration"]),
            "features_used": totals["features_used"],
        },
        "top_features": [
            {
                "feature_id": t["feature_id"],
                "feature_key": t["feature__key"],
                "feature_name": t["feature__name"],
                "events": t["events"],
            }
            for t in top
        ],
    } | _timeline_page(org, user, before)
