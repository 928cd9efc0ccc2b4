"""The per-user weekly feature masks (`analytics.feature_masks`) equal the per-user feature
rows after every roll, whatever changed since the last one, and the distinct users of a set
of features read from them (the feature breakdown's "other") equal the raw events' over
ranges with whole weeks and edge days, under person filters; a feature without a bit falls
back to the per-feature bitmask rows, and a rebuild gives the masks the rolls gave."""

import random
from datetime import date, timedelta

import pytest
from django.db import connection

from analytics import rollup
from analytics.active_days import BLOCK_DAYS, block_of, week_of
from analytics.feature_masks import FEATURE_MASK_FIELDS, MAX_FEATURE_BITS, feature_masks_rebuild, weeks_split
from analytics.models import DailyUserFeatureUsage, FeatureBit, UserActiveDays
from analytics.queries import active
from analytics.queries.filters import person_filter, person_filters
from telemetry.models import EndUser, Feature, UsageEvent

from .factories import at, end_user, feature
from .test_bitmask_invariant import DAYS, _Changes


def masks(org):
    return {
        (row["end_user_id"], row["block_start"]): tuple(row[name] for name in FEATURE_MASK_FIELDS)
        for row in UserActiveDays.objects.filter(organization=org).values(
            "end_user_id", "block_start", *FEATURE_MASK_FIELDS
        )
    }


def masks_from_rows(org):
    """The masks as the per-user feature rows and the features' bits say they should be."""
    bits = dict(FeatureBit.objects.filter(organization=org, feature__isnull=False).values_list("feature_id", "bit"))
    weeks = {key: [0] * len(FEATURE_MASK_FIELDS) for key in masks(org)}
    rows = DailyUserFeatureUsage.objects.filter(organization=org).values_list("end_user_id", "feature_id", "date")
    for user_id, feature_id, day in rows:
        weeks[(user_id, block_of(day))][week_of(day)] |= 1 << bits[feature_id]
    return {key: tuple(value) for key, value in weeks.items()}


def raw_users(org, filters, feature_ids, first, last):
    people = EndUser.objects.filter(person_filter(**person_filters(filters), prefix=""), organization=org)
    return (
        UsageEvent.objects.filter(
            organization=org,
            end_user__in=people,
            feature_id__in=feature_ids,
            timestamp__gte=at(str(first), "00:00:00"),
            timestamp__lt=at(str(last + timedelta(days=1)), "00:00:00"),
        )
        .values("end_user_id")
        .distinct()
        .count()
    )


def test_a_range_splits_into_its_whole_weeks_and_edge_days():
    monday = date(2025, 1, 13)
    assert weeks_split(monday, monday + timedelta(days=6)) == ({block_of(monday): [week_of(monday)]}, [])
    whole, edges = weeks_split(monday - timedelta(days=2), monday + timedelta(days=15))
    next_monday = monday + timedelta(days=7)  # the first week of the next block
    assert whole == {block_of(monday): [week_of(monday)], block_of(next_monday): [week_of(next_monday)]}
    assert edges == [
        monday - timedelta(days=2),
        monday - timedelta(days=1),
        monday + timedelta(days=14),
        monday + timedelta(days=15),
    ]
    assert weeks_split(monday + timedelta(days=1), monday + timedelta(days=3)) == (
        {},
        [monday + timedelta(days=i) for i in (1, 2, 3)],
    )


# Committed per roll, as outside tests (each roll is its own transaction).
@pytest.mark.django_db(transaction=True)
def test_random_changes_and_re_rolls_keep_masks_equal_to_rows_and_counts_to_raw_events(org):
    """Rolls out of order, then random changes each re-rolled (a pair vanishes, one
    appears, figures change, a day vanishes, an event moves, nothing, a pair swapped): after
    each the masks equal the rows; now and then the users of a set of features, read from
    the masks, equal the raw events' over ranges up to four blocks, under person filters."""
    rng = random.Random(20261204)
    changes = _Changes(org, rng)
    rolled = changes.rolled_out_of_order()
    assert masks(org) == masks_from_rows(org)
    feature_ids = [f.pk for f in changes.features]
    checked = 0
    for step in range(42):
        for day in changes.make(step % 7, rng.choice(rolled)):
            rollup.rollup_day(day, org)
            rolled.append(day)
        assert masks(org) == masks_from_rows(org), step
        if step % 3 == 2:
            for _ in range(4):
                first = rng.choice(DAYS)
                last = first + timedelta(days=rng.randrange(0, 4 * BLOCK_DAYS))
                chosen = rng.sample(feature_ids, rng.randrange(1, len(feature_ids)))
                filters = rng.choice([{}, {"gender": "F"}, {"age": "18-40"}, {"account": changes.accounts[0].pk}])
                assert active._masked_feature_users(org, first, last, filters, chosen) is not None
                expected = raw_users(org, filters, chosen, first, last)
                assert active.any_feature_users(org, first, last, filters, chosen) == expected, (first, last, filters)
                checked += 1
    assert checked == 14 * 4


@pytest.mark.django_db(transaction=True)
def test_a_feature_without_a_bit_is_counted_from_the_per_feature_rows(org):
    """Past the 63rd feature an organisation's features get no bit: a set with one of them
    is counted from the per-feature bitmask rows, the same figure."""
    FeatureBit.objects.bulk_create(FeatureBit(organization=org, bit=bit) for bit in range(MAX_FEATURE_BITS))
    day = DAYS[3]
    late = feature(org, "the-64th")
    person = end_user(org, "p")
    UsageEvent.objects.create(organization=org, feature=late, end_user=person, timestamp=at(str(day), "10:00:00"))
    rollup.rollup_day(day, org)
    assert not FeatureBit.objects.filter(feature=late).exists()
    assert active._masked_feature_users(org, day, day, {}, [late.pk]) is None
    assert active.any_feature_users(org, day - timedelta(days=3), day + timedelta(days=9), {}, [late.pk]) == 1


@pytest.mark.django_db(transaction=True)
def test_bits_are_given_once_and_never_reused(org):
    """A feature's bit is given by the roll of its first day, the next bit each time; a
    deleted feature's bit stays taken, so masks rolled before never name a new feature."""
    person = end_user(org, "p")
    first, second = feature(org, "first"), feature(org, "second")
    for day, used in ((DAYS[0], first), (DAYS[1], second), (DAYS[2], first)):
        UsageEvent.objects.create(organization=org, feature=used, end_user=person, timestamp=at(str(day), "10:00:00"))
        rollup.rollup_day(day, org)
    assert dict(FeatureBit.objects.values_list("feature_id", "bit")) == {first.pk: 0, second.pk: 1}
    Feature.objects.filter(pk=second.pk).delete()
    third = feature(org, "third")
    UsageEvent.objects.create(organization=org, feature=third, end_user=person, timestamp=at(str(DAYS[3]), "10:00:00"))
    rollup.rollup_day(DAYS[3], org)
    assert dict(FeatureBit.objects.values_list("feature_id", "bit")) == {first.pk: 0, None: 1, third.pk: 2}


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_gives_the_masks_the_rolls_gave(org):
    """The migration's way for rollups rolled before the masks: bits given and every week
    recomputed from the per-user feature rows."""
    rng = random.Random(7)
    changes = _Changes(org, rng)
    changes.rolled_out_of_order(days=20, most_events=5)
    rolled = masks(org)
    assert any(any(weeks) for weeks in rolled.values())
    UserActiveDays.objects.filter(organization=org).update(**dict.fromkeys(FEATURE_MASK_FIELDS, 0))
    FeatureBit.objects.filter(organization=org).delete()
    blocks = sorted({block for _, block in rolled})
    with connection.cursor() as cursor:
        feature_masks_rebuild(cursor, org.pk, blocks)
    assert masks(org) == masks_from_rows(org)
    assert FeatureBit.objects.filter(organization=org).count() == len(changes.features)


@pytest.mark.django_db(transaction=True)
def test_a_bit_removed_by_hand_leaves_a_gap_rather_than_a_clash(org):
    """Bits follow the highest one given: a row deleted by hand (a repair) leaves its bit
    unused, where counting the rows gave the next feature a bit still taken, and every roll
    of the organisation failed on the unique key from then on."""
    person = end_user(org, "p")
    features = [feature(org, key) for key in ("a", "b", "c")]
    for day, used in zip(DAYS, features[:2], strict=False):
        UsageEvent.objects.create(organization=org, feature=used, end_user=person, timestamp=at(str(day), "10:00:00"))
        rollup.rollup_day(day, org)
    FeatureBit.objects.filter(feature=features[0]).delete()
    UsageEvent.objects.create(
        organization=org, feature=features[2], end_user=person, timestamp=at(str(DAYS[2]), "10:00:00")
    )
    rollup.rollup_day(DAYS[2], org)
    assert dict(FeatureBit.objects.values_list("feature_id", "bit")) == {features[1].pk: 1, features[2].pk: 2}


@pytest.mark.django_db(transaction=True)
def test_two_days_of_one_block_rolled_side_by_side_do_not_deadlock(org, monkeypatch):
    """Roll B (a day whose users gained events) locks their rows of the block, roll A (a day
    whose events only moved between features, so it locks none of them first) holds the
    bitmask lock and recomputes a week of those rows: before the lock was taken ahead of the
    first row, PostgreSQL broke the cycle by failing roll B ("deadlock detected")."""
    if connection.vendor != "postgresql":
        pytest.skip("two connections writing at once")
    import threading
    import time

    from django.db import connections

    first_day = block_of(DAYS[0]) + timedelta(days=7)
    day_a, day_b = first_day, first_day + timedelta(days=1)
    moved_from, moved_to, other = (feature(org, key) for key in ("a", "b", "c"))
    people = [end_user(org, f"u{i}") for i in range(20)]
    for person in people:
        UsageEvent.objects.create(
            organization=org, feature=moved_from, end_user=person, timestamp=at(str(day_a), "10:00:00")
        )
        UsageEvent.objects.create(
            organization=org, feature=other, end_user=person, timestamp=at(str(day_b), "10:00:00")
        )
    rollup.rollup_day(day_a, org)
    rollup.rollup_day(day_b, org)
    UsageEvent.objects.filter(organization=org, feature=moved_from).update(feature=moved_to)
    for person in people:
        UsageEvent.objects.create(
            organization=org, feature=other, end_user=person, timestamp=at(str(day_b), "11:00:00")
        )

    original = rollup.rollup_feature_active_days
    b_inside = threading.Event()

    def slowed(*args, **kwargs):
        if threading.current_thread().name == "roll-b":
            b_inside.set()
            time.sleep(2)  # past PostgreSQL's deadlock_timeout (1 s)
        return original(*args, **kwargs)

    monkeypatch.setattr(rollup, "rollup_feature_active_days", slowed)
    outcomes = {}

    def roll(name, day):
        try:
            rollup.rollup_day(day, org.pk)
            outcomes[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test reads
            outcomes[name] = f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    roll_b = threading.Thread(target=roll, args=("b", day_b), name="roll-b")
    roll_b.start()
    assert b_inside.wait(30)
    roll_a = threading.Thread(target=roll, args=("a", day_a), name="roll-a")
    roll_a.start()
    roll_a.join(60)
    roll_b.join(60)
    assert outcomes == {"a": "ok", "b": "ok"}
    assert masks(org) == masks_from_rows(org)
