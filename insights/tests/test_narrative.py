"""Narrative: Gemini through google-genai against a stub HTTP server on localhost (only the
HTTP boundary is fake), heuristic fallback on no key / HTTP error / timeout / empty answer,
and the per-organisation cache."""

import json
import time
from datetime import timedelta

import pytest

from analytics.models import DailyOrgUsage
from insights import narrative
from insights.models import Anomaly, Insight
from insights.tests.helpers import StubServer, features_make, rollups_make, yesterday


def gemini_answer(text):
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 10, "totalTokenCount": 20},
    }


@pytest.fixture
def usage(org):
    features = features_make(org, 4)
    rollups_make(org, features, end=yesterday(), days=28)
    Anomaly.objects.create(
        organization=org,
        feature=features[1],
        date=yesterday(),
        detector="timeseries",
        metric="event_count",
        value=900,
        expected=300,
        score=7.5,
        severity="medium",
        details={"direction": "spike"},
    )
    return features


@pytest.fixture
def gemini(settings):
    def start(responses):
        server = StubServer(responses)
        settings.GEMINI_API_KEY = "test-key"
        settings.GEMINI_BASE_URL = server.url
        settings.GEMINI_MODEL = "gemini-2.5-flash"
        return server

    return start


def test_no_key_gives_heuristic_bullets_from_the_numbers(org, usage):
    insight = narrative.insight_current(org)
    assert insight.source == "heuristic" and insight.model == ""
    numbers = narrative.narrative_numbers(org)
    text = " ".join(insight.bullets)
    assert f"{numbers['events']:,} events" in text
    assert numbers["top_features"][0]["name"] in text
    assert "1 open anomaly" in text and "spike" in text
    assert insight.summary == insight.bullets[0]
    assert Insight.objects.filter(organization=org).count() == 1


def test_an_anomaly_without_a_baseline_is_told_without_an_expected_value(org, usage):
    Anomaly.objects.filter(organization=org).update(expected=None)
    numbers = narrative.narrative_numbers(org)
    text = " ".join(narrative.heuristic_bullets(numbers))
    assert "(900 , medium" not in text and "(900, medium" in text and "expected" not in text
    assert "expected" not in narrative.prompt_build(numbers).split("Open anomalies")[1]


def test_gemini_answer_is_used(org, usage, gemini):
    with gemini([(200, gemini_answer("- Usage grew 5 %.\n- Feature 3 leads.\n* One spike on Feature 1."), 0)]) as srv:
        insight = narrative.insight_current(org)
    assert insight.source == "gemini" and insight.model == "gemini-2.5-flash"
    assert insight.bullets == ["Usage grew 5 %.", "Feature 3 leads.", "One spike on Feature 1."]
    path, headers, body = srv.requests[0]
    assert "models/gemini-2.5-flash:generateContent" in path
    assert headers.get("x-goog-api-key") == "test-key"
    request = json.loads(body)
    thinking = request["generationConfig"]["thinkingConfig"]
    # google-genai sends the field's proto name; the API's JSON parser accepts either spelling.
    assert thinking.get("thinkingBudget", thinking.get("thinking_budget")) == 0
    prompt = request["contents"][0]["parts"][0]["text"]
    numbers = narrative.narrative_numbers(org)
    assert f"Events: {numbers['events']}" in prompt and "Open anomalies: 1." in prompt


def test_gemini_emphasis_is_not_left_as_asterisks(org, usage, gemini):
    """Bullets are shown as text: `**Usage grew 5 %**: …` was shown as 'Usage grew 5 %**: …'."""
    answer = "* **Usage grew 5 %**: 2,474 events.\n- Feature 3 *leads* in feature__a.\n- 5 * 3 = 15 stays."
    with gemini([(200, gemini_answer(answer), 0)]):
        insight = narrative.insight_current(org)
    assert insight.bullets == ["Usage grew 5 %: 2,474 events.", "Feature 3 leads in feature__a.", "5 * 3 = 15 stays."]


@pytest.mark.parametrize("status", [500, 429, 400, 403])
def test_http_error_falls_back(org, usage, gemini, status):
    with gemini([(status, {"error": {"code": status, "message": "nope", "status": "ERR"}}, 0)]) as srv:
        insight = narrative.insight_current(org)
    assert len(srv.requests) == 1  # never retried: the fallback is cheaper than waiting
    assert insight.source == "heuristic" and insight.bullets


def test_timeout_falls_back_within_the_bound(org, usage, gemini, settings):
    settings.GEMINI_TIMEOUT_SECONDS = 0.5
    with gemini([(200, gemini_answer("- late"), 3)]):
        began = time.monotonic()
        insight = narrative.insight_current(org)
        elapsed = time.monotonic() - began
    assert insight.source == "heuristic"
    assert elapsed < 2.5


@pytest.mark.parametrize("answer", [gemini_answer(""), gemini_answer("   \n  "), {"candidates": []}, b"not json"])
def test_empty_or_garbled_answer_falls_back(org, usage, gemini, answer):
    with gemini([(200, answer, 0)]):
        insight = narrative.insight_current(org)
    assert insight.source == "heuristic" and insight.bullets


def test_unreachable_server_falls_back(org, usage, settings):
    settings.GEMINI_API_KEY = "test-key"
    settings.GEMINI_BASE_URL = "http://127.0.0.1:8598"  # nothing listens there
    assert narrative.insight_current(org).source == "heuristic"


def test_cache_holds_for_its_ttl(org, usage, gemini, settings):
    settings.INSIGHTS_CACHE_TTL = 1
    with gemini([(200, gemini_answer("- first"), 0), (200, gemini_answer("- second"), 0)]) as srv:
        first = narrative.insight_current(org)
        again = narrative.insight_current(org)
        assert again.pk == first.pk and len(srv.requests) == 1
        time.sleep(1.2)
        fresh = narrative.insight_current(org)
        assert len(srv.requests) == 2
    assert fresh.pk != first.pk and fresh.bullets == ["second"]
    assert Insight.objects.filter(organization=org).count() == 2


def test_a_lost_cache_entry_reuses_the_stored_insight_within_its_ttl(org, usage, gemini, settings):
    from django.core.cache import cache

    settings.INSIGHTS_CACHE_TTL = 60
    with gemini([(200, gemini_answer("- first"), 0), (200, gemini_answer("- second"), 0)]) as srv:
        first = narrative.insight_current(org)
        cache.clear()  # evicted, or Redis restarted empty or unreachable
        again = narrative.insight_current(org)
        assert again.pk == first.pk and len(srv.requests) == 1
        assert cache.get(narrative.cache_key(org)).pk == first.pk  # cached again
        Insight.objects.filter(pk=first.pk).update(created_at=first.created_at - timedelta(seconds=61))
        cache.clear()
        assert narrative.insight_current(org).bullets == ["second"]
    assert Insight.objects.filter(organization=org).count() == 2


def test_refresh_bypasses_the_cache(org, usage):
    first = narrative.insight_current(org)
    assert narrative.insight_current(org, refresh=True).pk != first.pk


def test_cache_is_per_organisation(org, usage, other_org):
    mine = narrative.insight_current(org)
    theirs = narrative.insight_current(other_org)
    assert mine.pk != theirs.pk and theirs.organization_id == other_org.id
    assert theirs.bullets[0].startswith("No usage was recorded")


def test_numbers_trend_against_previous_period(org):
    features = features_make(org, 2)
    end = yesterday()
    rollups_make(org, features, end=end - timedelta(days=14), days=14, seed=2)
    start = end - timedelta(days=13)
    spikes = {(0, start + timedelta(days=i)): 2.0 for i in range(14)}
    rollups_make(org, features, end=end, days=14, seed=2, spikes=spikes)
    numbers = narrative.narrative_numbers(org)
    assert numbers["period_start"] == start and numbers["period_end"] == end
    assert numbers["events_change_pct"] > 20
    assert numbers["rising"][0]["key"] == features[0].key


def test_users_per_day_count_the_days_nobody_was_active(org):
    """The rollup writes no row for a day without events: 10 users on 7 of the 14 days are
    5 a day, not 10 (and 10 on 4 of the 14 days before: 2.9 a day, so a rise, not 0 %)."""
    end = yesterday()
    for offset in [*range(0, 14, 2), *range(14, 22, 2)]:
        day = end - timedelta(days=offset)
        DailyOrgUsage.objects.create(organization=org, date=day, event_count=50, active_users=10)
    numbers = narrative.narrative_numbers(org)
    assert (numbers["avg_daily_active_users"], numbers["previous_avg_daily_active_users"]) == (5.0, 2.9)
    assert "On average 5 users were active per day (+72.4 %)" in " ".join(narrative.heuristic_bullets(numbers))


def test_api_shape_and_roles(analyst_client, member_client, org, usage):
    response = analyst_client.get("/api/v1/ai/usage-insights")
    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"source", "model", "bullets", "summary", "generated_at"}
    assert body["source"] == "heuristic" and body["bullets"]
    assert member_client.get("/api/v1/ai/usage-insights").status_code == 403
    refused = analyst_client.get("/api/v1/ai/usage-insights?refresh=maybe")
    assert refused.status_code == 400 and refused.json()["errors"] == {"refresh": ["Must be true or false."]}


def test_api_query_count_when_cached(analyst_client, org, usage, django_assert_max_num_queries):
    analyst_client.get("/api/v1/ai/usage-insights")
    with django_assert_max_num_queries(2):  # the user; the narrative comes from the cache
        assert analyst_client.get("/api/v1/ai/usage-insights").status_code == 200


def test_sessions_without_durations_are_not_called_zero_seconds(org, usage):
    # Rollups whose events carried no session duration: the narrative says nothing of
    # session length rather than "sessions lasted 0 s".
    rows = DailyOrgUsage.objects.filter(organization=org)
    rows.update(timed_events=0, total_session_duration=0, avg_session_duration=0)
    numbers = narrative.narrative_numbers(org)
    assert numbers["avg_session_duration"] is None
    bullets = narrative.heuristic_bullets(numbers)
    assert not any("session" in b for b in bullets)
    users = next(b for b in bullets if b.startswith("On average"))
    assert users.endswith(".") and "0 s" not in users
    assert "session duration" not in narrative.prompt_build(numbers)


def test_sessions_with_durations_are_reported(org, usage):
    numbers = narrative.narrative_numbers(org)
    assert numbers["avg_session_duration"] == 125.0
    assert "sessions lasted 125 s on average." in " ".join(narrative.heuristic_bullets(numbers))
    assert "Average session duration: 125.0 s." in narrative.prompt_build(numbers)
