"""The per-account recency rows (DailyAccountRecency): a feature's distinct users of
one account, over any range of up to RECENCY_DAYS + 1 days, read from one row per day and
account, equal the raw events; each day's account rows add up to its feature rows
less the users without an account; the Account page's and `feature-usage?account=`'s read
touches no bitmask row; stale days fall back to the bitmasks; the migration's marks rebuild
them; a user counts in the account their days were rolled up in."""

import math
import random
from collections import defaultdict
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics import rollup
from analytics.models import DailyAccountRecency, DailyFeatureRecency, FeatureRecencyStale
from analytics.queries import accounts, active
from analytics.recency import RECENCY_DAYS, recency_feature_users, recency_stale_rebuild
from telemetry.models import Account, EndUser

from . import raw_reference as ref
from .conftest import committed_writes
from .factories import at, end_user, event, feature, migration_fill_run, random_events, random_ranges

pytestmark = pytest.mark.django_db

LAST = date(2025, 6, 11)
FIRST = LAST - timedelta(days=129)


def _build(org):
    rng = random.Random(43)
    features = [feature(org, key) for key in ("search", "export", "share")]
    companies = [Account.objects.create(organization=org, external_id=f"acct-{i}", name=f"Co {i}") for i in range(3)]
    # Every fourth person has no account: they count in no account's rows.
    people = [
        end_user(org, f"a{i:02d}", first_seen=at(str(FIRST)), account=companies[i % 4] if i % 4 < 3 else None)
        for i in range(40)
    ]
    random_events(org, rng, features, people, FIRST, 130, 1200)
    rollup.rollup_range(FIRST, LAST, org)
    return {"features": features, "accounts": companies}


@pytest.fixture(scope="module")
def data(module_org, django_db_blocker):
    with committed_writes(django_db_blocker):
        return {"org": module_org, **_build(module_org)}


def raw_users(org, start, end, account):
    return ref.feature_users(org, start, end, {"account": account})


def ranges(n, seed):
    fixed = [(FIRST, FIRST + timedelta(days=RECENCY_DAYS)), (LAST, LAST), (LAST - timedelta(days=27), LAST)]
    return random_ranges(FIRST, LAST, RECENCY_DAYS, n, seed, fixed)


def account_users(org, start, end, account, feature_id=None):
    return recency_feature_users(connection.alias, org.pk, start, end, feature_id, account_id=account.pk)


def test_rows_answer_every_account_and_range_as_the_raw_events(data):
    org = data["org"]
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    one = data["features"][2].pk
    for i, company in enumerate(data["accounts"]):
        for start, end in ranges(12, seed=i):
            expected = raw_users(org, start, end, company.pk)
            assert account_users(org, start, end, company) == expected, (company.external_id, start, end)
            only = {one: expected[one]} if expected.get(one) else {}
            assert account_users(org, start, end, company, one) == only, (company.external_id, start, end)


def test_an_unchanged_re_roll_rebuilds_no_recency_row(data):
    """Only a day whose bits, segments or accounts moved rebuilds its recency rows: the check
    compares the day's segment and account figures with the pairs', both ways."""
    org = data["org"]
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    with CaptureQueriesContext(connection) as queries:
        rollup.rollup_day(LAST - timedelta(days=5), org)
    rebuilds = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE") and "recency" in q["sql"]]
    assert rebuilds == []


def test_each_days_account_rows_add_up_to_its_feature_rows_less_the_users_without_one(data):
    org = data["org"]
    totals: dict[tuple[int, date], int] = defaultdict(int)
    for row in DailyAccountRecency.objects.filter(organization=org):
        assert row.gaps
        for feature_id, gaps in row.gaps.items():
            assert gaps and all(users > 0 for users in gaps.values())
            totals[int(feature_id), row.date] += sum(gaps.values())
    without = defaultdict(set)
    for r in ref.load(org):
        if r.user is not None and r.account is None:
            without[r.feature, r.day].add(r.user)
    expected = {
        (row.feature_id, row.date): row.absent_before[0] - len(without[row.feature_id, row.date])
        for row in DailyFeatureRecency.objects.filter(organization=org)
    }
    assert totals == {key: n for key, n in expected.items() if n}


def test_an_accounts_reads_touch_no_bitmask_row(data):
    org, company = data["org"], data["accounts"][0]
    start = LAST - timedelta(days=89)
    with CaptureQueriesContext(connection) as queries:
        got = active.feature_users(org, start, LAST, {"account": company})
    assert len(queries.captured_queries) == 1
    assert "userfeatureactivedays" not in queries.captured_queries[0]["sql"]
    assert got == raw_users(org, start, LAST, company.pk)
    with CaptureQueriesContext(connection) as queries:
        detail = accounts.account_detail(org, company.external_id, end=LAST)
    assert not [q for q in queries.captured_queries if "userfeatureactivedays" in q["sql"]]
    recent = raw_users(org, detail["start"], LAST, company.pk)
    assert {r["feature_id"]: r["users"] for r in detail["features_adopted"]} == recent


def test_stale_days_and_longer_ranges_fall_back_to_the_bitmasks(data):
    org, company = data["org"], data["accounts"][1]
    start, end = FIRST, FIRST + timedelta(days=RECENCY_DAYS + 1)
    assert account_users(org, start, end, company) is None
    assert active.feature_users(org, start, end, {"account": company}) == raw_users(org, start, end, company.pk)
    day = LAST - timedelta(days=10)
    FeatureRecencyStale.objects.create(organization=org, date=day)
    start = day - timedelta(days=3)
    assert account_users(org, start, day, company) is None
    assert active.feature_users(org, start, day, {"account": company}) == raw_users(org, start, day, company.pk)
    assert recency_stale_rebuild(org.pk, budget_seconds=math.inf) == 1
    assert account_users(org, start, day, company) == raw_users(org, start, day, company.pk)


def test_the_migration_marks_built_days_that_rebuild_to_the_rollups_rows(data):
    org, company = data["org"], data["accounts"][2]

    def rows():
        return {(r.date, r.account_id): r.gaps for r in DailyAccountRecency.objects.filter(organization=org)}

    rolled = rows()
    DailyAccountRecency.objects.filter(organization=org).delete()
    migration_fill_run("0022_account_recency")
    built_days = DailyFeatureRecency.objects.filter(organization=org).values("date").distinct().count()
    assert FeatureRecencyStale.objects.filter(organization=org).count() == built_days
    start, end = LAST - timedelta(days=29), LAST
    assert account_users(org, start, end, company) is None
    assert active.feature_users(org, start, end, {"account": company}) == raw_users(org, start, end, company.pk)
    recency_stale_rebuild(org.pk, budget_seconds=math.inf)
    assert rows() == rolled


def test_a_user_counts_in_the_account_their_days_were_rolled_up_in(data):
    """As the account rollups: a user who moved to another account counts in the old one
    until their days are rolled up again, and the re-roll moves them although no event
    changed."""
    org, search = data["org"], data["features"][0]
    old, new = data["accounts"][0], data["accounts"][1]
    person = end_user(org, "mover", first_seen=at(str(FIRST)), account=old)
    day = LAST - timedelta(days=2)
    event(org, search, person, at(str(day)))
    rollup.rollup_day(day, org)
    start, end = day - timedelta(days=6), day
    in_old = account_users(org, start, end, old)[search.pk]
    in_new = account_users(org, start, end, new).get(search.pk, 0)
    EndUser.objects.filter(pk=person.pk).update(account=new)
    assert account_users(org, start, end, old)[search.pk] == in_old
    rollup.rollup_range(start, end, org)
    assert account_users(org, start, end, old).get(search.pk, 0) == in_old - 1
    assert account_users(org, start, end, new)[search.pk] == in_new + 1
    assert account_users(org, start, end, new) == raw_users(org, start, end, new.pk)


def test_days_built_without_account_rows_heal_at_the_next_run(data):
    """A day rebuilt by code older than the account rows (a worker on the previous release
    after migration 0022 dropped the day's mark): the next rebuild finds it and builds it."""
    org, company = data["org"], data["accounts"][0]
    day = LAST - timedelta(days=20)
    DailyAccountRecency.objects.filter(organization=org, date=day).delete()
    assert not FeatureRecencyStale.objects.filter(organization=org).exists()
    assert recency_stale_rebuild(org.pk) == 1
    start = day - timedelta(days=3)
    assert account_users(org, start, day, company) == raw_users(org, start, day, company.pk)
    assert recency_stale_rebuild(org.pk) == 0
