"""MovieLens ratings → usage events (DESIGN, Demo data), computed in memory, no database.

- each rating is one `interaction` event of end user `user_<user_id>` on feature
  `feature_<item_id>` at the rating's time;
- session_duration = rating × 60 + uniform(−15, 30) seconds, at least 1;
- the organisation is a stable SHA-256 of the user id modulo the number of organisations;
- the event uuid is a uuid5 of (user, item, original timestamp), so seeding again (even with
  another `--recent-days` or `--limit`) recognises what is already stored;
- `--limit` keeps the events with the smallest uuids: a stable, uniform sample of users,
  items and time, whatever the source's row order;
- anomalies: 2 % of the events get a tripled duration and `injected: true`. They are taken as
  whole (organisation, item, day) cells — the day as stored, after `--recent-days` — so that
  feature's average session on that day jumps (a spike a detector can find) instead of 2 %
  noise spread evenly over everything;
- `--recent-days N` maps the data's time range linearly onto the N days ending now, and
  (with anomalies) plans a few bursts for the time-series detector to find (`EventPlan.bursts`):
  on each of BURST_DAYS_AGO days before today, one of each organisation's busiest features
  gets BURST_EVENTS more events, all of event type `share` with `burst: true` in their
  metadata — a spike whose explanation is that event type. MovieLens alone has no such
  day: a film gets a rating or two a day, spread evenly, so the demo would show no anomaly.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

EVENT_NAMESPACE = uuid.UUID("6f1c3a52-7d0e-4a61-9a43-2f8f0f5b1d7e")
ANOMALY_SHARE = 0.02
ANOMALY_FACTOR = 3.0
DAY = 86_400
# Demo bursts (with --recent-days): days before today (complete days the detector judges;
# one burst per day, on the organisation's busiest, then next busiest feature) and their
# size: against the one or two events a day of the demo's busiest features, a ×20 day.
BURST_DAYS_AGO = (2, 5)
BURST_EVENTS = 40
BURST_EVENT_TYPE = "share"


def org_index(user_id: int, orgs: int) -> int:
    """0-based organisation of a MovieLens user: stable across runs, machines and sources."""
    return int(hashlib.sha256(str(user_id).encode()).hexdigest(), 16) % orgs


def event_uuid(user_id: int, item_id: int, timestamp: int) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"movielens:{user_id}:{item_id}:{timestamp}")


def feature_key(item_id: int) -> str:
    return f"feature_{item_id}"


def end_user_external_id(user_id: int) -> str:
    return f"user_{user_id}"


@dataclass
class EventPlan:
    """`events`: one row per MovieLens event, sorted by uuid. Columns: uuid (str), org
    (0-based index), user_id, item_id, rating, original_ts (epoch s), timestamp (epoch s
    after --recent-days), session_duration, injected (bool), session_id, event_type, burst
    (bool). `bursts`: the demo's spikes, same columns (original_ts = their day)."""

    events: pd.DataFrame
    bursts: pd.DataFrame | None = None

    def __len__(self):
        return len(self.events) + (0 if self.bursts is None else len(self.bursts))

    def all_events(self) -> pd.DataFrame:
        return self.events if self.bursts is None else pd.concat([self.events, self.bursts], ignore_index=True)


def _inject(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Marks ANOMALY_SHARE of the rows, as whole (organisation, item, day) cells: repeatedly a
    random unmarked row is drawn and its cell joins, so cells are picked with a probability
    proportional to their size; the last cell is cut to hit the share exactly."""
    target = int(round(ANOMALY_SHARE * len(frame)))
    injected = np.zeros(len(frame), dtype=bool)
    if target == 0:
        return injected
    days = frame["timestamp"].to_numpy() // DAY
    cells = (frame["org"].to_numpy() * 10_000_000 + frame["item_id"].to_numpy()) * 100_000 + (days - days.min())
    order = rng.permutation(len(frame))
    codes, inverse = np.unique(cells, return_inverse=True)
    sorter = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[sorter], np.arange(codes.size + 1))
    chosen = 0
    for row in order:
        if chosen >= target:
            break
        if injected[row]:
            continue
        cell = inverse[row]
        take = sorter[bounds[cell] : bounds[cell + 1]][: target - chosen]
        injected[take] = True
        chosen += take.size
    return injected


def movielens_events_build(
    ratings: pd.DataFrame,
    *,
    orgs: int,
    limit: int | None,
    anomalies: bool = True,
    recent_days: int | None = None,
    seed: int = 42,
    now: datetime | None = None,
) -> EventPlan:
    """The events to seed, computed from the ratings frame (`user_id, item_id, rating, timestamp`)."""
    frame = ratings[["user_id", "item_id", "rating", "timestamp"]].rename(columns={"timestamp": "original_ts"})
    uuids = [
        str(event_uuid(u, i, t))
        for u, i, t in zip(
            frame["user_id"].tolist(), frame["item_id"].tolist(), frame["original_ts"].tolist(), strict=True
        )
    ]
    frame = frame.assign(uuid=uuids).drop_duplicates("uuid").sort_values("uuid", kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    frame = frame.reset_index(drop=True)

    users = frame["user_id"].unique()
    org_of_user = {int(u): org_index(int(u), orgs) for u in users}
    frame["org"] = frame["user_id"].map(org_of_user).astype("int64")

    frame["timestamp"] = _timestamps(frame["original_ts"].to_numpy(), recent_days=recent_days, now=now)
    rng = np.random.default_rng(seed)
    durations = frame["rating"].to_numpy() * 60.0 + rng.uniform(-15.0, 30.0, size=len(frame))
    durations = np.maximum(durations, 1.0)
    injected = _inject(frame, rng) if anomalies else np.zeros(len(frame), dtype=bool)
    durations = np.where(injected, durations * ANOMALY_FACTOR, durations)
    frame["session_duration"] = np.round(durations, 3)
    frame["injected"] = injected

    frame["event_type"] = "interaction"
    frame["burst"] = False
    frame["session_id"] = _session_ids(frame)
    bursts = _bursts(frame, rng, now=now or datetime.now(UTC)) if anomalies and recent_days else None
    return EventPlan(events=frame, bursts=bursts)


def _session_ids(frame: pd.DataFrame) -> pd.Series:
    return "ml-" + frame["user_id"].astype(str) + "-" + (frame["timestamp"] // DAY).astype(str)


def _bursts(frame: pd.DataFrame, rng: np.random.Generator, *, now: datetime) -> pd.DataFrame:
    """The demo's spikes: for each organisation and each of BURST_DAYS_AGO, its next
    busiest feature gets BURST_EVENTS extra events from its organisation's users (distinct
    ones first), at random times of that UTC day. Their uuids depend only on
    (organisation, item, n), so seeding again adds none twice."""
    today = int(now.timestamp()) // DAY
    rows = []
    for org, mine in frame.groupby("org"):
        busiest = mine["item_id"].value_counts().sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        users = mine["user_id"].unique()
        for days_ago, item in zip(BURST_DAYS_AGO, busiest.index, strict=False):
            ratings = mine.loc[mine["item_id"] == item, "rating"].to_numpy()
            day_start = (today - days_ago) * DAY
            for n in range(BURST_EVENTS):
                rating = int(rng.choice(ratings))
                rows.append(
                    {
                        "user_id": int(users[n] if n < len(users) else rng.choice(users)),
                        "item_id": int(item),
                        "rating": rating,
                        "original_ts": day_start,
                        "uuid": str(uuid.uuid5(EVENT_NAMESPACE, f"movielens-burst:{org}:{item}:{n}")),
                        "org": int(org),
                        "timestamp": day_start + int(rng.integers(0, DAY)),
                        "session_duration": round(max(1.0, rating * 60.0 + rng.uniform(-15.0, 30.0)), 3),
                        "injected": False,
                        "event_type": BURST_EVENT_TYPE,
                        "burst": True,
                    }
                )
    bursts = pd.DataFrame(rows, columns=[c for c in frame.columns if c != "session_id"])
    bursts["session_id"] = _session_ids(bursts)
    return bursts[list(frame.columns)]


def _timestamps(original: np.ndarray, *, recent_days: int | None, now: datetime | None) -> np.ndarray:
    """The original times, or mapped linearly onto (now − recent_days, now]."""
    if not recent_days or original.size == 0:
        return original.astype(np.int64)
    end = int((now or datetime.now(UTC)).timestamp())
    start = end - recent_days * DAY
    low, high = int(original.min()), int(original.max())
    if high == low:
        return np.full(original.size, end, dtype=np.int64)
    scaled = start + (original - low) * ((end - start) / (high - low))
    return np.clip(np.floor(scaled).astype(np.int64), start + 1, end)
