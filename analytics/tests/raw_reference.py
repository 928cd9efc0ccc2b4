"""The analytics answers worked out from raw events in plain Python: the reference the
rollup-backed queries must equal (test_rollup_equivalence). Each function states the
definition it implements; none reads a rollup."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from analytics.queries.common import previous_period, rounded, week_monday
from telemetry.models import EndUser, UsageEvent

AGE_BANDS = {
    "<18": lambda age: age is not None and age < 18,
    "18-40": lambda age: age is not None and 18 <= age <= 40,
    ">40": lambda age: age is not None and age > 40,
}


@dataclass(frozen=True)
class Row:
    user: int | None
    external_id: str | None
    feature: int
    feature_key: str
    ts: datetime
    day: date
    session: str
    duration: float | None
    age: int | None
    gender: str
    account: int | None = None
    event_type: str = "interaction"


def load(org) -> list[Row]:
    profiles = {u.pk: u for u in EndUser.objects.filter(organization=org)}
    rows = []
    for e in UsageEvent.objects.filter(organization=org).select_related("feature"):
        person = profiles.get(e.end_user_id)
        rows.append(
            Row(
                user=e.end_user_id,
                external_id=person.external_id if person else None,
                feature=e.feature_id,
                feature_key=e.feature.key,
                ts=e.timestamp,
                day=e.timestamp.astimezone(UTC).date(),
                session=e.session_id,
                duration=e.session_duration,
                age=person.age if person else None,
                gender=person.gender if person else "",
                account=person.account_id if person else None,
                event_type=e.event_type,
            )
        )
    return rows


def matching(rows: list[Row], filters: dict) -> list[Row]:
    """The filter set: feature, age band, gender, account (an Account or its id; a person
    filter drops anonymous events)."""
    out = rows
    if filters.get("feature") is not None:
        out = [r for r in out if r.feature == getattr(filters["feature"], "pk", filters["feature"])]
    if filters.get("age"):
        out = [r for r in out if r.user is not None and AGE_BANDS[filters["age"]](r.age)]
    if filters.get("gender"):
        out = [r for r in out if r.user is not None and r.gender == filters["gender"]]
    if filters.get("account"):
        account = getattr(filters["account"], "pk", filters["account"])
        out = [r for r in out if r.user is not None and r.account == account]
    return out


def _in(rows: list[Row], start: date, end: date) -> list[Row]:
    return [r for r in rows if start <= r.day <= end]


def _average(rows: list[Row]) -> float | None:
    """Σ durations / events with one; None when no event carries a duration."""
    timed = [r.duration for r in rows if r.duration is not None]
    return rounded(sum(timed) / len(timed)) if timed else None


def _sessions(rows: list[Row], per_user: bool) -> int:
    """Sessions are counted per day (and per end user under a person filter)."""
    return len({(r.day, r.user if per_user else None, r.session) for r in rows if r.session})


def summary(rows: list[Row], start: date, end: date, filters: dict) -> dict:
    per_user = bool(filters.get("age") or filters.get("gender") or filters.get("account"))
    chosen = matching(rows, filters)
    out = {}
    prev_start, prev_end = previous_period(start, end)
    for name, (lo, hi) in (("value", (start, end)), ("previous", (prev_start, prev_end))):
        period = _in(chosen, lo, hi)
        out[name] = {
            "total_events": len(period),
            "active_users": len({r.user for r in period if r.user is not None}),
            "features_tracked": len({r.feature for r in period}),
            "sessions": _sessions(period, per_user),
            "avg_session_duration": _average(period),
        }
    return {k: (out["value"][k], out["previous"][k]) for k in out["value"]}


def _bucket(day: date, interval: str, start: date) -> date:
    """A week is labelled by its Monday, or by `start` when `start` cuts it."""
    return day if interval == "day" else max(week_monday(day), start)


def series(rows: list[Row], metric: str, interval: str, start: date, end: date, filters: dict) -> dict[date, float]:
    """The points of a series that carry something: non-zero events or distinct users, or an
    average session wherever some event has a duration (0 s included)."""
    grouped: dict[date, list[Row]] = defaultdict(list)
    for r in _in(matching(rows, filters), start, end):
        grouped[_bucket(r.day, interval, start)].append(r)
    values = {}
    for bucket, group in grouped.items():
        if metric == "events":
            values[bucket] = len(group)
        elif metric == "active_users":
            values[bucket] = len({r.user for r in group if r.user is not None})
        else:
            values[bucket] = _average(group)
    if metric == "avg_session_duration":
        return {b: v for b, v in values.items() if v is not None}
    return {b: v for b, v in values.items() if v}


def users(rows: list[Row], start: date, end: date, first_seen: dict[int, datetime | None]) -> list[dict]:
    """Per end user with events in start..end, most events first (ties: user id)."""
    per: dict[int, list[Row]] = defaultdict(list)
    for r in _in(rows, start, end):
        if r.user is not None:
            per[r.user].append(r)
    out = []
    for uid, group in per.items():
        counts = Counter(r.feature_key for r in group)
        top = min(counts, key=lambda k: (-counts[k], k))
        first_event = min(r.ts for r in group)
        out.append(
            {
                "id": uid,
                "user_id": group[0].external_id,
                "events": len(group),
                "avg_session_duration": _average(group),
                "first_seen": min(filter(None, (first_seen[uid], first_event))),
                "last_seen": max(r.ts for r in group),
                "top_feature": top,
            }
        )
    out.sort(key=lambda u: (-u["events"], u["id"]))
    return out


def retention(rows: list[Row], first_seen: dict[int, datetime | None], weeks: int, end: date) -> list[dict]:
    """Cohorts by first-seen week: sizes, % active in each week since, D1/D7/D30."""
    first = week_monday(end) - timedelta(days=7 * (weeks - 1))
    active: dict[int, set[date]] = defaultdict(set)
    for r in _in(rows, first, end):
        if r.user is not None:
            active[r.user].add(r.day)
    cohorts = []
    for cw in range(weeks):
        lo = first + timedelta(days=7 * cw)
        members = {
            uid: seen.astimezone(UTC).date()
            for uid, seen in first_seen.items()
            if seen is not None
            and lo <= seen.astimezone(UTC).date() < lo + timedelta(days=7)
            and seen.astimezone(UTC).date() <= end
        }
        size = len(members)

        def pct(n: int, size: int = size) -> float | None:
            return round(n / size * 100, 1) if size else None

        grid = []
        for k in range(weeks - cw):
            wk = lo + timedelta(days=7 * k)
            grid.append(
                pct(
                    sum(
                        1
                        for uid, d0 in members.items()
                        if any(wk <= d < wk + timedelta(days=7) and d >= d0 for d in active[uid])
                    )
                )
            )
        row = {"cohort_start": lo, "size": size, "weeks": grid}
        last_day = min(lo + timedelta(days=6), end)
        for n in (1, 7, 30):
            hits = sum(1 for uid, d0 in members.items() if d0 + timedelta(days=n) in active[uid])
            row[f"d{n}"] = pct(hits) if size and last_day + timedelta(days=n) <= end else None
        cohorts.append(row)
    return cohorts


def feature_users(org, start: date, end: date, filters: dict | None = None) -> dict[int, int]:
    """{feature: distinct end users within start..end} of the events matching `filters`."""
    users: dict[int, set[int]] = defaultdict(set)
    for r in matching(load(org), filters or {}):
        if r.user is not None and start <= r.day <= end:
            users[r.feature].add(r.user)
    return {fid: len(u) for fid, u in users.items()}
