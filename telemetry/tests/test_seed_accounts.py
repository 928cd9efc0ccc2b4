"""The demo seeder's accounts: every seeded end user in one of the demo accounts, the same
one on every run, and the at-risk accounts' recent events moved back, none lost."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pandas as pd
import pytest
from django.core.management import call_command

from telemetry.models import Account, EndUser, UsageEvent
from telemetry.seed.accounts import AT_RISK_ACCOUNTS, DEMO_ACCOUNTS, RECENT_DAYS, account_index, at_risk_applied

pytestmark = pytest.mark.django_db


def test_seeded_end_users_belong_to_demo_accounts():
    args = ("seed_movielens", "--source", "synthetic", "--orgs", "1", "--limit", "600")
    call_command(*args, stdout=StringIO(), stderr=StringIO())
    names = dict(DEMO_ACCOUNTS)
    assert Account.objects.count() == len(DEMO_ACCOUNTS) == 36
    assert all(a.name == names[a.external_id] for a in Account.objects.all())
    users = list(EndUser.objects.select_related("account"))
    assert users and all(u.account is not None for u in users)
    for user in users:  # user_<MovieLens id>: the account follows from the id alone
        assert user.account.external_id == DEMO_ACCOUNTS[account_index(int(user.external_id.split("_")[1]))][0]
    assert len({u.account_id for u in users}) > 20  # spread over the accounts, not piled on a few
    before = {u.external_id: u.account_id for u in users}
    call_command(*args, stdout=StringIO(), stderr=StringIO())
    assert {u.external_id: u.account_id for u in EndUser.objects.all()} == before
    assert Account.objects.count() == 36 and UsageEvent.objects.count() == 600


def _plan(user_ids, now, days):
    rows = []
    for user_id in user_ids:
        for day in range(days):
            for n in range(4):
                stamp = int((now - timedelta(days=day, hours=n)).timestamp())
                rows.append({"uuid": f"00000000-0000-0000-0000-00000000{user_id:02d}{day:02d}{n}", "user_id": user_id})
                rows[-1]["timestamp"] = stamp
    return pd.DataFrame(rows)


def test_at_risk_accounts_lose_recent_usage_and_keep_every_event():
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    risky = next(u for u in range(1, 500) if account_index(u) in AT_RISK_ACCOUNTS)
    healthy = next(u for u in range(1, 500) if account_index(u) not in AT_RISK_ACCOUNTS)
    plan = _plan([risky, healthy], now, days=60)
    moved = at_risk_applied(plan, now=now)
    assert len(moved) == len(plan) and moved["uuid"].tolist() == plan["uuid"].tolist()
    recent_from = (now - timedelta(days=RECENT_DAYS)).timestamp()
    previous_from = (now - timedelta(days=2 * RECENT_DAYS)).timestamp()

    def windows(frame, user_id):
        mine = frame[frame["user_id"] == user_id]["timestamp"]
        return int((mine >= recent_from).sum()), int(((mine >= previous_from) & (mine < recent_from)).sum())

    assert windows(moved, healthy) == windows(plan, healthy)
    recent, previous = windows(moved, risky)
    assert previous - recent >= 0.3 * previous  # at risk: down 30 % or more
    assert moved[moved["user_id"] == risky]["timestamp"].min() >= plan["timestamp"].min()
    # The demo's bursts stay on their day.
    bursty = plan.assign(burst=True)
    assert at_risk_applied(bursty, now=now)["timestamp"].tolist() == plan["timestamp"].tolist()
    # A plan spanning less than the shift is left alone.
    short = _plan([risky], now, days=14)
    assert at_risk_applied(short, now=now)["timestamp"].tolist() == short["timestamp"].tolist()
