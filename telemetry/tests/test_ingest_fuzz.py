"""Arbitrary JSON in every field of an event never makes the endpoints fail: each item is
either stored or reported, and what was accepted is what was stored."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.models import UsageEvent
from telemetry.tests.helpers import BATCH, TRACK, post

pytestmark = pytest.mark.django_db

finite = st.floats(allow_nan=False, allow_infinity=False)  # what JSON can carry


def _nested(depth, leaf):
    value = leaf
    for _ in range(depth):
        value = {"a": value} if depth % 2 else [value]
    return value


# Values that once made the endpoints fail with a 500 (issue 11), and their neighbours:
# digits that are not ASCII, times astimezone cannot reach, numbers past any column.
hostile = st.one_of(
    st.sampled_from(["²", "١٢", "１２", "1_2", "\x00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]),
    st.from_regex(r"(0001|9999)-(01|12)-(01|31)T(00|23):00:00[+-](01|14):00", fullmatch=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([1e308, -1e308, 2**63, 2**64 - 1, -(2**63)]),
    # Deep values (orjson refuses to write past 254 levels; the limit per item is 32).
    st.builds(_nested, st.integers(min_value=20, max_value=250), st.none() | st.integers()),
)
json_scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=30) | hostile
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=6,
)
FIELDS = [
    "uuid",
    "feature_id",
    "feature",
    "user_id",
    "email",
    "age",
    "gender",
    "properties",
    "account_id",
    "event_type",
    "session_id",
    "session_duration",
    "timestamp",
    "metadata",
]
items = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6).map(lambda d: {"feature": "fuzz", **d})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(items | json_values, min_size=1, max_size=5))
def test_random_batches_never_fail(key_client, org, batch):
    before = UsageEvent.objects.filter(organization=org).count()
    resp = post(key_client, BATCH, batch)
    assert resp.status_code in (200, 400), resp.content
    body = resp.json()
    assert UsageEvent.objects.filter(organization=org).count() - before == body["accepted"]
    reported = {e["index"] for e in body["errors"]}
    assert body["accepted"] + body["duplicates"] + len(reported) == len(batch)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=items)
def test_random_track_calls_never_fail(key_client, org, item):
    resp = post(key_client, TRACK, item)
    assert resp.status_code in (200, 201, 400), resp.content


hostile_items = st.dictionaries(st.sampled_from(FIELDS), hostile, min_size=1, max_size=4).map(
    lambda d: {"feature": "fuzz", **d}
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(items | hostile_items, min_size=1, max_size=10))
def test_hostile_values_stay_item_errors(key_client, org, batch):
    """Every item is stored or reported on its own, whatever it holds: a batch never fails
    as a whole because of one item."""
    before = UsageEvent.objects.filter(organization=org).count()
    resp = post(key_client, BATCH, batch)
    assert resp.status_code in (200, 400), resp.content
    body = resp.json()
    assert UsageEvent.objects.filter(organization=org).count() - before == body["accepted"]
    reported = {e["index"] for e in body["errors"]}
    assert body["accepted"] + body["duplicates"] + len(reported) == len(batch)
