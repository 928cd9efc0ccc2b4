"""The API's figures over ranges across four 8-week bitmask blocks, starting mid-week and on
block edges, equal the ones counted here from the raw events: events at 00:00:00 and
23:59:59.999, anonymous events, sessions and durations with and without values, under the
filters combined (a feature, age, gender, an account, a user property). The other
equivalence tests (test_rollup_equivalence) keep to ranges of a block or two."""

import random
import uuid
from collections import defaultdict
from datetime import UTC, date, timedelta

import pytest

from analytics import rollup
from analytics.queries.common import rounded, week_monday
from telemetry.models import Account, EndUser, UsageEvent

from .factories import at, end_user, feature

pytestmark = pytest.mark.django_db

BASE = "/api/v1/analytics"
# Blocks start on 2025-12-22, 2026-02-16, 2026-04-13 and 2026-06-08: the data touches all four.
FIRST, LAST = date(2026, 2, 9), date(2026, 6, 10)
RANGES = [
    (FIRST, LAST),
    (date(2026, 2, 11), date(2026, 6, 9)),
    (date(2026, 2, 15), date(2026, 2, 16)),
    (date(2026, 4, 13), date(2026, 6, 8)),
]
BANDS = {"<18": range(0, 18), "18-40": range(18, 41), ">40": range(41, 200)}


@pytest.fixture
def long_data(org):
    rng = random.Random(21)
    features = [feature(org, f"f{i}") for i in range(4)]
    accounts = [Account.objects.create(organization=org, external_id=f"a{i}") for i in range(2)]
    people = [
        end_user(
            org,
            f"u{i:02d}",
            age=rng.choice([None, 12, 18, 40, 41]),
            gender=rng.choice(["", "F", "M"]),
            account=rng.choice([*accounts, None]),
            properties={"plan": rng.choice(["pro", "free"])} if rng.random() < 0.8 else {},
        )
        for i in range(24)
    ]
    # 30 days with events, the blocks' first and last days among them: a day without events
    # has nothing to roll up, and rolling each of the 122 days cost 10 s.
    edges = [date(2026, 2, 15), date(2026, 2, 16), date(2026, 4, 12), date(2026, 4, 13), date(2026, 6, 8)]
    days = sorted({FIRST, LAST, *edges, *(FIRST + timedelta(days=rng.randrange(122)) for _ in range(23))})
    UsageEvent.objects.bulk_create(
        UsageEvent(
            uuid=uuid.uuid4(),
            organization=org,
            feature=rng.choice(features),
            end_user=rng.choice([*people, None, None]),
            session_id=rng.choice(["", f"s{rng.randrange(20)}"]),
            session_duration=rng.choice([None, float(rng.randrange(300))]),
            timestamp=at(
                str(rng.choice(days)),
                rng.choice(["00:00:00", "23:59:59.999", f"{rng.randrange(24):02d}:30:00"]),
            ),
        )
        for _ in range(700)
    )
    for day in days:
        rollup.rollup_day(day, org)
    return features, accounts


def raw_rows(org) -> list[dict]:
    people = {u.pk: u for u in EndUser.objects.filter(organization=org)}
    rows = []
    for e in UsageEvent.objects.filter(organization=org):
        p = people.get(e.end_user_id)
        rows.append(
            {
                "user": e.end_user_id,
                "feature": e.feature_id,
                "day": e.timestamp.astimezone(UTC).date(),
                "session": e.session_id,
                "duration": e.session_duration,
                "age": p.age if p else None,
                "gender": p.gender if p else None,
                "account": p.account_id if p else None,
                "plan": p.properties.get("plan") if p else None,
            }
        )
    return rows


def kept(row: dict, filters: dict) -> bool:
    """The filter set; a person filter drops the anonymous events."""
    if "feature" in filters and row["feature"] != filters["feature"]:
        return False
    if set(filters) - {"feature"} and row["user"] is None:
        return False
    if "age" in filters and (row["age"] is None or row["age"] not in BANDS[filters["age"]]):
        return False
    checks = (("gender", "gender"), ("account", "account"), ("user.plan", "plan"))
    return all(row[field] == filters[name] for name, field in checks if name in filters)


def expected_summary(rows: list[dict], filters: dict) -> dict:
    per_user = bool(set(filters) - {"feature"})
    timed = [r["duration"] for r in rows if r["duration"] is not None]
    return {
        "total_events": len(rows),
        "active_users": len({r["user"] for r in rows if r["user"]}),
        "features_tracked": len({r["feature"] for r in rows}),
        # Sessions count per day (and per end user under a person filter).
        "sessions": len({(r["day"], r["user"] if per_user else None, r["session"]) for r in rows if r["session"]}),
        "avg_session_duration": rounded(sum(timed) / len(timed)) if timed else None,
    }


def expected_weeks(rows: list[dict], start: date) -> dict[str, tuple[int, int]]:
    """{week label: (events, distinct users)}; a first week cut by `start` is labelled `start`."""
    weeks: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        weeks[str(max(week_monday(r["day"]), start))].append(r)
    return {week: (len(group), len({r["user"] for r in group if r["user"]})) for week, group in weeks.items()}


def expected_features(rows: list[dict], days: int) -> dict[int, tuple[int, float | None]]:
    """{feature: (events, DAU/MAU %)}: Σ daily users over the days / days / distinct users."""
    out = {}
    for fid in {r["feature"] for r in rows}:
        mine = [r for r in rows if r["feature"] == fid and r["user"]]
        daily, distinct = len({(r["day"], r["user"]) for r in mine}), len({r["user"] for r in mine})
        events = sum(1 for r in rows if r["feature"] == fid)
        out[fid] = (events, round(daily * 100.0 / days / distinct, 1) if distinct else None)
    return out


def test_figures_over_four_blocks_equal_raw_events(analyst_client, org, long_data):
    features, accounts = long_data
    rows = raw_rows(org)
    filter_sets = [
        {},
        {"feature": features[0].pk},
        {"user.plan": "pro"},
        {"age": "18-40", "gender": "F", "user.plan": "pro"},
        {"feature": features[1].pk, "account": accounts[0].pk, "user.plan": "free"},
    ]
    for start, end in RANGES:
        for filters in filter_sets:
            query = {"start": start, "end": end, **filters}
            if "account" in filters:
                query["account"] = next(a.external_id for a in accounts if a.pk == filters["account"])
            chosen = [r for r in rows if start <= r["day"] <= end and kept(r, filters)]
            # The previous period: as many days, ending the day before `start`.
            before = start - timedelta(days=(end - start).days + 1)
            earlier = [r for r in rows if before <= r["day"] < start and kept(r, filters)]
            summary = analyst_client.get(f"{BASE}/usage-summary", query).json()
            expected = expected_summary(chosen, filters)
            assert {k: summary[k]["value"] for k in expected} == expected, query
            assert {k: summary[k]["previous"] for k in expected} == expected_summary(earlier, filters), query
            weeks = {}
            for metric in ("events", "active_users"):
                points = analyst_client.get(f"{BASE}/timeseries", {**query, "metric": metric, "interval": "week"})
                for p in points.json()["points"]:
                    weeks.setdefault(p["date"], []).append(p["value"])
            assert {w: tuple(v) for w, v in weeks.items() if any(v)} == expected_weeks(chosen, start), query
            usage = analyst_client.get(f"{BASE}/feature-usage", query).json()["results"]
            got = {r["feature_id"]: (r["events"], r["stickiness_pct"]) for r in usage if r["events"]}
            assert got == expected_features(chosen, (end - start).days + 1), query
