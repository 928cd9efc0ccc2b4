"""Arbitrary values in every field the PostHog and Segment mappings read never make the SDK
routes fail: each message is accepted, a duplicate or rejected, and the answer says which."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from telemetry.models import UsageEvent
from telemetry.tests.test_ingest_fuzz import hostile, json_values

pytestmark = pytest.mark.django_db

values = json_values | hostile
names = st.sampled_from(["search", "$set", "$set_once", "$identify", "$groupidentify", "$pageview", "$create_alias"])
texts = st.text(max_size=12)
posthog_properties = st.dictionaries(
    st.sampled_from(
        [
            "$session_id",
            "$groups",
            "$group_key",
            "$group_type",
            "$group_set",
            "$set",
            "$set_once",
            "distinct_id",
            "$process_person_profile",
            "token",
            "plan",
        ]
    ),
    values | st.dictionaries(st.sampled_from(["company", "email", "age", "gender", "name"]), values, max_size=3),
    max_size=4,
)
posthog_messages = st.fixed_dictionaries(
    {"event": names | values, "distinct_id": texts | values},
    optional={
        "properties": posthog_properties | values,
        "timestamp": values,
        "uuid": st.uuids().map(str) | values,
        "$set": st.dictionaries(st.sampled_from(["email", "age", "gender", "x"]), values, max_size=3) | values,
        "$set_once": st.dictionaries(st.sampled_from(["email", "age", "x"]), values, max_size=2) | values,
        "offset": values,
        "sent_at": values,
    },
)
segment_messages = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "page", "screen", "identify", "group", "alias"]) | values},
    optional={
        "event": texts | values,
        "userId": texts | values,
        "anonymousId": values,
        "messageId": texts | values,
        "timestamp": values,
        "sentAt": values,
        "properties": values,
        "context": st.dictionaries(st.sampled_from(["groupId", "sessionId", "traits"]), values, max_size=2) | values,
        "traits": st.dictionaries(st.sampled_from(["email", "age", "gender", "name"]), values, max_size=3) | values,
        "groupId": texts | values,
        "name": values,
        "category": values,
    },
)


def _check(resp, count, org, before):
    assert resp.status_code in (200, 400), resp.content
    body = resp.json()
    assert [r["index"] for r in body["results"]] == list(range(count))
    statuses = [r["status"] for r in body["results"]]
    assert set(statuses) <= {"accepted", "duplicate", "rejected"}
    assert (body["accepted"], body["duplicates"]) == (statuses.count("accepted"), statuses.count("duplicate"))
    assert {e["index"] for e in body["errors"]} == {r["index"] for r in body["results"] if r["status"] == "rejected"}
    assert UsageEvent.objects.filter(organization=org).count() - before <= body["accepted"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(posthog_messages, min_size=1, max_size=6), sent_at=values)
def test_random_posthog_batches_never_fail(raw_api_key, org, batch, sent_at):
    before = UsageEvent.objects.filter(organization=org).count()
    body = json.dumps({"api_key": raw_api_key, "sent_at": sent_at, "batch": batch}).encode()
    resp = APIClient().generic("POST", "/batch/", body, content_type="application/json")
    _check(resp, len(batch), org, before)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(segment_messages, min_size=1, max_size=6), sent_at=values)
def test_random_segment_batches_never_fail(raw_api_key, org, batch, sent_at):
    before = UsageEvent.objects.filter(organization=org).count()
    body = json.dumps({"sentAt": sent_at, "batch": batch}).encode()
    auth = "Basic " + base64.b64encode(f"{raw_api_key}:".encode()).decode()
    resp = APIClient().generic("POST", "/v1/batch", body, content_type="application/json", HTTP_AUTHORIZATION=auth)
    _check(resp, len(batch), org, before)
