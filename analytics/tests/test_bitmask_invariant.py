"""The per-feature active-day bits equal the per-user-and-feature rows after every roll,
whatever changed since the last one (a roll runs the bitmask steps only when the day's rows
lost or gained a (feature, user) pair), and `manage.py rollup --recheck-bitmasks` repairs
bits that drifted from the rows outside the rollup."""

import random
import uuid
from datetime import date, timedelta

import pytest
from django.core.management import call_command

from analytics import rollup
from analytics.active_days import BLOCK_DAYS, day_bit
from analytics.models import UserFeatureActiveDays
from analytics.queries import active
from analytics.queries.filters import person_filter, person_filters
from telemetry.models import Account, EndUser, UsageEvent

from .factories import at, end_user, feature
from .test_feature_active_days import bitmasks, bits_from_days, earlier_copies, earlier_from_rows

FIRST = date(2025, 1, 13)
DAYS = [FIRST + timedelta(days=i) for i in range(3 * BLOCK_DAYS + 2)]  # four blocks


def _raw_features(org, filters, first, last):
    people = EndUser.objects.filter(person_filter(**person_filters(filters), prefix=""), organization=org)
    events = UsageEvent.objects.filter(
        organization=org,
        end_user__in=people,
        timestamp__gte=at(str(first), "00:00:00"),
        timestamp__lt=at(str(last + timedelta(days=1)), "00:00:00"),
    )
    if filters.get("feature"):
        events = events.filter(feature_id=filters["feature"])
    return events.values("feature_id").distinct().count()


class _Changes:
    """Random events of a few people and features, and the changes a test re-rolls."""

    def __init__(self, org, rng):
        self.org, self.rng = org, rng
        self.features = [feature(org, key) for key in ("a", "b", "c", "d")]
        self.accounts = [Account.objects.create(organization=org, external_id=f"acct-{i}") for i in range(2)]
        self.people = [
            end_user(
                org,
                f"p{i}",
                age=rng.choice([None, 15, 30, 50]),
                gender=rng.choice(["F", "M", ""]),
                account=rng.choice([*self.accounts, None]),
            )
            for i in range(12)
        ]

    def add(self, day, person=None, feat=None):
        UsageEvent.objects.create(
            uuid=uuid.uuid4(),
            organization=self.org,
            feature=feat or self.rng.choice(self.features),
            end_user=person if person is not None else self.rng.choice([*self.people, None]),
            session_id=self.rng.choice(["", "s1"]),
            timestamp=at(str(day), f"{self.rng.randrange(24):02d}:{self.rng.randrange(60):02d}:00"),
        )

    def _pair_event(self):
        return UsageEvent.objects.filter(organization=self.org, end_user__isnull=False).order_by("?").first()

    def _pair_delete(self, e):
        UsageEvent.objects.filter(
            organization=self.org, end_user=e.end_user, feature=e.feature, timestamp__date=e.timestamp.date()
        ).delete()

    def rolled_out_of_order(self, days=30, most_events=7):
        """Events on `days` random days, each day rolled once in a random order: the days."""
        rolled = self.rng.sample(DAYS, days)
        for day in rolled:
            for _ in range(self.rng.randrange(1, most_events + 1)):
                self.add(day)
        for day in sorted(rolled, key=lambda _: self.rng.random()):
            rollup.rollup_day(day, self.org)
        return rolled

    def make(self, change, day):
        """Change the events as `change` (0–6) says, around `day`; the days to re-roll."""
        e = self._pair_event()
        if change == 0 and e:  # a pair vanishes
            self._pair_delete(e)
            return [e.timestamp.date()]
        if change == 1:  # a pair appears (or only gains events)
            self.add(day, self.rng.choice(self.people))
        elif change == 2 and e:  # figures only
            self.add(e.timestamp.date(), e.end_user, e.feature)
            return [e.timestamp.date()]
        elif change == 3:  # the whole day vanishes
            UsageEvent.objects.filter(organization=self.org, timestamp__date=day).delete()
        elif change == 4 and e:  # an event moves to another day
            moved_to = self.rng.choice(DAYS)
            UsageEvent.objects.filter(pk=e.pk).update(timestamp=at(str(moved_to), "12:00:00"))
            return [e.timestamp.date(), moved_to]
        elif change == 6 and e:  # a pair swapped for another on the same day
            self._pair_delete(e)
            self.add(e.timestamp.date(), self.rng.choice(self.people), self.rng.choice(self.features))
            return [e.timestamp.date()]
        return [day]  # change 5: nothing changed, the day is re-rolled as it is


# Committed per roll, as outside tests (each roll is its own transaction).
@pytest.mark.django_db(transaction=True)
def test_random_changes_and_re_rolls_keep_bits_equal_to_rows(org):
    """Rolls out of order, then random changes each re-rolled: a pair vanishes, one appears,
    only figures change, a whole day vanishes, an event moves to another day, nothing
    changes, a pair is swapped for another on the same day. After each, the bits and their
    copies in the later blocks equal the rows; now and then the features used under an
    account and other person filters equal the raw events over ranges up to four blocks."""
    rng = random.Random(20261202)
    changes = _Changes(org, rng)
    rolled = changes.rolled_out_of_order()
    assert bitmasks(org) == bits_from_days(org)
    accounts, features = changes.accounts, changes.features
    for step in range(40):
        for day in changes.make(step % 7, rng.choice(rolled)):
            rollup.rollup_day(day, org)
            rolled.append(day)
        assert bitmasks(org) == bits_from_days(org), step
        assert earlier_copies(org) == earlier_from_rows(org), step
        if step % 10 == 9:
            start = rng.choice(DAYS)
            periods = [(start, start + timedelta(days=rng.randrange(1, 4 * BLOCK_DAYS))), (DAYS[0], start)]
            for filters in (
                {"account": accounts[0].pk, "gender": "F"},
                {"account": accounts[1].pk, "age": "18-40"},
                {"account": accounts[0].pk, "gender": "M", "feature": features[0].pk},
            ):
                expected = [_raw_features(org, filters, first, last) for first, last in periods]
                assert active.features_used(org, filters, periods) == expected, (filters, periods)


@pytest.mark.django_db(transaction=True)
def test_recheck_bitmasks_repairs_bits_written_outside_the_rollup(org):
    """A bit lost outside the rollup (here: cleared by hand) stays lost through a plain
    re-roll, which only runs the bitmask steps when the day's rows changed;
    `manage.py rollup --recheck-bitmasks` brings it back, and one set by hand goes."""
    day = FIRST + timedelta(days=3)
    person = end_user(org, "p")
    search, export = feature(org, "search"), feature(org, "export")
    UsageEvent.objects.create(organization=org, feature=search, end_user=person, timestamp=at(str(day), "09:00:00"))
    rollup.rollup_day(day, org)
    expected = bits_from_days(org)
    UserFeatureActiveDays.objects.filter(organization=org, feature=search).update(active_days=0)
    UserFeatureActiveDays.objects.create(
        organization=org, feature=export, end_user=person, block_start=list(expected)[0][2], active_days=day_bit(day)
    )
    rollup.rollup_day(day, org)
    assert bitmasks(org) != expected
    call_command("rollup", "--since", str(day), "--until", str(day), "--recheck-bitmasks", "--no-progress")
    assert bitmasks(org) == expected  # the hand-made row emptied and dropped
