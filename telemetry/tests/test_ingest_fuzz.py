"""Arbitrary JSON in every field of an event never makes the endpoints fail: each item is
either stored or reported, and what was accepted is what was stored."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telemetry.models import UsageEvent
from telemetry.tests.helpers import BATCH, TRACK, post

pytestmark = pytest.mark.django_db

finite = st.floats(allow_nan=False, allow_infinity=False)  # what JSON can carry
json_scalars = st.none() | st.booleans() | st.integers() | finite | st.text(max_size=30)
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
