"""Usage data for the page tests, sent through the real ingestion service and rolled up by the
real rollup, so the pages show exactly what a tenant's product would produce."""

import random
from datetime import UTC, datetime, time, timedelta

from analytics import rollup
from core.days import today
from telemetry.services.ingest import events_ingest

FEATURES = (("search", 5), ("export", 2), ("share", 1), ("reports", 3))
AGES = (16, 24, 31, 38, 45, 52, 67)


def usage_make(org, *, days=45, users=18, seed=7, member=None):
    """About `users` end users active over the last `days` days (events every few days, in
    morning sessions), user-000 … user-NNN with ages and genders; rolled up. With `member`
    a few events are sent as that person, so they have their own activity."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    end = today()
    keys = [key for key, _ in FEATURES]
    weights = [weight for _, weight in FEATURES]
    items = []
    for d in range(days):
        day = end - timedelta(days=days - 1 - d)
        for u in range(users):
            # Later users start later: the weekly cohorts fill up over time.
            if d < u * days // (users * 2) or rng.random() > 0.45:
                continue
            hour = 8 + rng.randint(0, 3)
            for k in range(rng.randint(1, 4)):
                ts = datetime.combine(day, time(hour, 5 * k + rng.randint(0, 4)), UTC)
                if ts > now:
                    continue
                items.append(
                    {
                        "feature": rng.choices(keys, weights)[0],
                        "user_id": f"user-{u:03d}",
                        "email": f"user{u}@customer.example",
                        "age": AGES[u % len(AGES)],
                        "gender": "FMO"[u % 3],
                        "session_id": f"s-{u}-{d}",
                        "session_duration": rng.randint(20, 400),
                        "timestamp": ts.isoformat(),
                    }
                )
    result = events_ingest(org, items)
    assert not result.errors, result.errors[:3]
    if member is not None:
        mine = [
            {"feature": key, "session_id": "member-visit", "session_duration": 60, "timestamp": now.isoformat()}
            for key in keys
        ]
        assert not events_ingest(org, mine, user=member).errors
    rollup.rollup_range(end - timedelta(days=days + 1), end, org)
    return result.accepted
