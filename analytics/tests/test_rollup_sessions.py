"""The rolled-up distinct sessions (per feature, per user, per user and feature, per
organisation) equal the raw events' for every kind of session: one user's, one user's across
features, shared by users, shared by a user and anonymous events, anonymous only, and none."""

import random
from collections import defaultdict
from datetime import date

import pytest

from analytics import rollup
from analytics.models import DailyFeatureUsage, DailyOrgUsage, DailyUserFeatureUsage, DailyUserUsage
from telemetry.models import UsageEvent

from .factories import at, end_user, event, feature

DAY = date(2025, 3, 1)


def raw_sessions(org):
    """Distinct non-empty session ids of DAY's events per feature, user, (feature, user) and
    for the organisation."""
    per_feature, per_user, per_pair, everyone = defaultdict(set), defaultdict(set), defaultdict(set), set()
    for e in UsageEvent.objects.filter(organization=org):
        if not e.session_id:
            continue
        per_feature[e.feature_id].add(e.session_id)
        everyone.add(e.session_id)
        if e.end_user_id is not None:
            per_user[e.end_user_id].add(e.session_id)
            per_pair[(e.feature_id, e.end_user_id)].add(e.session_id)
    return per_feature, per_user, per_pair, everyone


def assert_sessions_equal_raw(org):
    per_feature, per_user, per_pair, everyone = raw_sessions(org)
    features = dict(DailyFeatureUsage.objects.filter(organization=org, date=DAY).values_list("feature_id", "sessions"))
    assert features == {f: len(per_feature.get(f, ())) for f in features}
    users = dict(DailyUserUsage.objects.filter(organization=org, date=DAY).values_list("end_user_id", "sessions"))
    assert users == {u: len(per_user.get(u, ())) for u in users}
    pairs = DailyUserFeatureUsage.objects.filter(organization=org, date=DAY)
    assert {(r.feature_id, r.end_user_id): r.sessions for r in pairs} == {
        (r.feature_id, r.end_user_id): len(per_pair.get((r.feature_id, r.end_user_id), ())) for r in pairs
    }
    assert DailyOrgUsage.objects.get(organization=org, date=DAY).sessions == len(everyone)


def test_every_kind_of_session_is_counted_once(org):
    search, export, share = feature(org, "search"), feature(org, "export"), feature(org, "share")
    u1, u2, u3 = (end_user(org, f"u{i}") for i in (1, 2, 3))
    # u1's own session over two features, twice in one.
    event(org, search, u1, at(str(DAY), "09:00:00"), session="own")
    event(org, search, u1, at(str(DAY), "09:01:00"), session="own")
    event(org, export, u1, at(str(DAY), "09:02:00"), session="own")
    # Shared by u1 and u2, in one feature and across two.
    event(org, search, u1, at(str(DAY), "10:00:00"), session="shared")
    event(org, search, u2, at(str(DAY), "10:01:00"), session="shared")
    event(org, export, u2, at(str(DAY), "10:02:00"), session="shared")
    # Shared by u3 and anonymous events.
    event(org, share, u3, at(str(DAY), "11:00:00"), session="identified")
    event(org, share, None, at(str(DAY), "11:01:00"), session="identified")
    event(org, search, None, at(str(DAY), "11:02:00"), session="identified")
    # Anonymous only, and no session at all.
    event(org, export, None, at(str(DAY), "12:00:00"), session="anon")
    event(org, export, None, at(str(DAY), "12:01:00"), session="anon")
    event(org, share, u2, at(str(DAY), "13:00:00"))
    rollup.rollup_day(DAY, org)
    assert_sessions_equal_raw(org)
    assert DailyOrgUsage.objects.get(organization=org, date=DAY).sessions == 4
    assert dict(
        DailyFeatureUsage.objects.filter(organization=org, date=DAY).values_list("feature__key", "sessions")
    ) == {
        "search": 3,
        "export": 3,
        "share": 1,
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sessions_equal_raw_events_and_survive_a_re_roll(org, seed):
    rng = random.Random(seed)
    features = [feature(org, key) for key in ("a", "b", "c")]
    people = [end_user(org, f"r{i}") for i in range(12)]
    # Most sessions belong to one user (its own id), some ids are reused by others.
    for _ in range(300):
        person = rng.choice([*people, None])
        own = f"{person.pk if person else 'anon'}-{rng.randrange(3)}"
        session = rng.choice([own, own, own, f"x{rng.randrange(6)}", ""])
        when = at(str(DAY), f"{rng.randrange(24):02d}:{rng.randrange(60):02d}:00")
        event(org, rng.choice(features), person, when, session=session)
    rollup.rollup_day(DAY, org)
    assert_sessions_equal_raw(org)
    # Late events turn some own sessions into shared ones.
    for person in people[:4]:
        event(org, features[0], people[-1], at(str(DAY), "23:00:00"), session=f"{person.pk}-0")
    rollup.rollup_day(DAY, org)
    assert_sessions_equal_raw(org)
