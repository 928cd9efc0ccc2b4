"""The demo's accounts (customer companies): every seeded end user belongs to one of a few
dozen, chosen from their MovieLens user id by a hash (stable across runs, machines and
sources). Two of them are made *at risk* on purpose: three in four of their users' events of
the last weeks are moved 4 weeks earlier, so their usage visibly falls (by more than the
30 % that flags an account), while every event is still stored exactly once."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import pandas as pd

DEMO_ACCOUNTS = (
    ("acme", "Acme Corporation"),
    ("globex", "Globex"),
    ("initech", "Initech"),
    ("umbrella", "Umbrella Health"),
    ("hooli", "Hooli"),
    ("stark", "Stark Industries"),
    ("wayne", "Wayne Enterprises"),
    ("wonka", "Wonka Confectionery"),
    ("cyberdyne", "Cyberdyne Systems"),
    ("soylent", "Soylent Foods"),
    ("tyrell", "Tyrell Corporation"),
    ("vandelay", "Vandelay Industries"),
    ("pied-piper", "Pied Piper"),
    ("dunder", "Dunder Mifflin"),
    ("massive", "Massive Dynamic"),
    ("oscorp", "Oscorp"),
    ("gringotts", "Gringotts Bank"),
    ("monarch", "Monarch Logistics"),
    ("northwind", "Northwind Traders"),
    ("contoso", "Contoso"),
    ("fabrikam", "Fabrikam"),
    ("tailspin", "Tailspin Toys"),
    ("adventure", "Adventure Works"),
    ("litware", "Litware"),
    ("proseware", "Proseware"),
    ("wingtip", "Wingtip Travel"),
    ("blue-yonder", "Blue Yonder Airlines"),
    ("coho", "Coho Winery"),
    ("fourth-coffee", "Fourth Coffee"),
    ("lucerne", "Lucerne Publishing"),
    ("margie", "Margie's Travel"),
    ("alpine", "Alpine Ski House"),
    ("bellows", "Bellows College"),
    ("trey", "Trey Research"),
    ("woodgrove", "Woodgrove Bank"),
    ("humongous", "Humongous Insurance"),
)
# Indexes into DEMO_ACCOUNTS whose recent usage the demo cuts back.
AT_RISK_ACCOUNTS = frozenset({3, 11})
RECENT_DAYS = 28


def account_index(user_id: int) -> int:
    """The demo account (index into DEMO_ACCOUNTS) of a MovieLens user."""
    digest = hashlib.sha256(f"account:{user_id}".encode()).hexdigest()
    return int(digest, 16) % len(DEMO_ACCOUNTS)


def account_rows() -> list[dict[str, str]]:
    """The rows `storage.accounts_upsert` takes, for every demo account."""
    return [{"external_id": external_id, "name": name} for external_id, name in DEMO_ACCOUNTS]


def at_risk_applied(events: pd.DataFrame, *, now: datetime) -> pd.DataFrame:
    """`events` (an EventPlan frame, epoch-second `timestamp`) with three in four of the at-risk
    accounts' events of the last RECENT_DAYS days moved RECENT_DAYS days earlier: which ones
    is decided by each event's uuid, so a re-run moves the same events. An event is moved
    only where it stays within the plan's span (a plan of two weeks is left as it is), and
    never a burst event."""
    if events.empty:
        return events
    recent_from = (now - timedelta(days=RECENT_DAYS)).timestamp()
    at_risk = events["user_id"].map(lambda u: account_index(int(u)) in AT_RISK_ACCOUNTS)
    chosen = events["uuid"].map(lambda u: int(str(u).replace("-", "")[-1], 16) % 4 != 0)
    shift = RECENT_DAYS * 86400
    inside = events["timestamp"] - shift >= events["timestamp"].min()
    # The demo's bursts stay on their day: the anomaly detector is shown finding them there.
    burst = events["burst"].astype(bool) if "burst" in events else False
    moved = at_risk & chosen & inside & ~burst & (events["timestamp"] >= recent_from)
    if not moved.any():
        return events
    events = events.copy()
    events.loc[moved, "timestamp"] = events.loc[moved, "timestamp"] - shift
    return events
