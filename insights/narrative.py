"""Plain-language insights: numbers from the rollups → a prompt → Gemini → bullets.

No API key, an HTTP error, a timeout or an empty answer all fall back to heuristic bullets
written from the same numbers, so the page always has something true to say. The result is
stored as an `Insight` and cached per organisation for INSIGHTS_CACHE_TTL seconds.

Open anomalies are counted by `insights.queries`, as the Insights page, the API and the
digests count them; a stored narrative written with another count than today's is
regenerated rather than shown, so it never contradicts the table below it.
"""

import logging
import re
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Avg, Sum
from django.utils import timezone

from analytics import queries as analytics_queries
from analytics.models import DailyFeatureUsage, DailyOrgUsage
from core.days import today
from tenants.models import Organization

from .explain import explanation_phrase
from .models import Insight
from .queries import anomalies_open, anomalies_open_count

logger = logging.getLogger(__name__)

PERIOD_DAYS = 14
TOP_FEATURES = 5
MAX_BULLETS = 6


def cache_key(org: Organization) -> str:
    return f"insights:narrative:{org.id}"


def _pct(current: float, previous: float) -> float | None:
    if not previous:
        return None
    return round((current - previous) / previous * 100, 1)


def narrative_numbers(org: Organization, *, end: date | None = None) -> dict[str, Any]:
    """The facts the narrative is about: the last PERIOD_DAYS days against the ones before."""
    if end is None:
        end = (
            analytics_queries.last_complete_day(org, rollup=DailyOrgUsage)
            or analytics_queries.last_complete_day(org)
            or today() - timedelta(days=1)
        )
    start = end - timedelta(days=PERIOD_DAYS - 1)
    prev_start, prev_end = start - timedelta(days=PERIOD_DAYS), start - timedelta(days=1)

    def org_totals(a: date, b: date) -> dict[str, Any]:
        totals = DailyOrgUsage.objects.filter(organization=org, date__gte=a, date__lte=b).aggregate(
            events=Sum("event_count"),
            users=Sum("active_users"),
            duration=Sum("total_session_duration"),
            timed=Sum("timed_events"),
        )
        # Users per day of the period: a day without events has no row (nobody was active),
        # and an average over the rows alone called a weekdays-only product's weekday figure
        # the daily average (the dashboard divides by the days of its range too).
        totals["users"] = (totals["users"] or 0) / ((b - a).days + 1)
        return totals

    now_totals, prev_totals = org_totals(start, end), org_totals(prev_start, prev_end)

    def per_feature(a: date, b: date) -> dict[int, dict[str, Any]]:
        return {
            row["feature_id"]: row
            for row in DailyFeatureUsage.objects.filter(organization=org, date__gte=a, date__lte=b)
            .values("feature_id", "feature__key", "feature__name")
            .annotate(events=Sum("event_count"), users=Avg("daily_active_users"))
            .order_by()
        }

    current, previous = per_feature(start, end), per_feature(prev_start, prev_end)
    features: list[dict[str, Any]] = []
    for feature_id, row in current.items():
        before = previous.get(feature_id, {}).get("events") or 0
        features.append(
            {
                "key": row["feature__key"],
                "name": row["feature__name"] or row["feature__key"],
                "events": int(row["events"] or 0),
                "previous_events": int(before),
                "change_pct": _pct(row["events"] or 0, before),
            }
        )
    features.sort(key=lambda f: (-f["events"], f["key"]))
    movers = [f for f in features if f["change_pct"] is not None and f["previous_events"] >= 20]
    rising = sorted((f for f in movers if f["change_pct"] > 0), key=lambda f: -f["change_pct"])[:3]
    falling = sorted((f for f in movers if f["change_pct"] < 0), key=lambda f: f["change_pct"])[:3]
    open_rows = anomalies_open(org)
    open_count = open_rows.count()
    top_open = [
        {
            "date": a.date.isoformat(),
            "feature": (a.feature.name or a.feature.key) if a.feature else "all features",
            "metric": a.metric,
            "value": round(a.value, 1),
            # None: no baseline to compare with, which "0 expected" would misstate.
            "expected": None if a.expected is None else round(a.expected, 1),
            "direction": (a.details or {}).get("direction", "change"),
            "severity": a.severity,
            "explanation": explanation_phrase(a.explanation),
        }
        for a in open_rows[:3]
    ]
    events = int(now_totals["events"] or 0)
    previous_events = int(prev_totals["events"] or 0)
    return {
        "period_start": start,
        "period_end": end,
        "events": events,
        "previous_events": previous_events,
        "events_change_pct": _pct(events, previous_events),
        "avg_daily_active_users": round(now_totals["users"] or 0, 1),
        "previous_avg_daily_active_users": round(prev_totals["users"] or 0, 1),
        # None when no event of the period carried a duration: unknown, never "0 s".
        "avg_session_duration": analytics_queries.session_average(now_totals["duration"] or 0, now_totals["timed"]),
        "features_active": len(features),
        "top_features": features[:TOP_FEATURES],
        "rising": rising,
        "falling": falling,
        "open_anomalies": open_count,
        "top_anomalies": top_open,
    }


def _signed(pct: float | None) -> str:
    return f"{pct:+.1f} %" if pct is not None else "n/a"


def heuristic_bullets(numbers: dict[str, Any]) -> list[str]:
    """Bullets computed from the numbers alone; no model, always available."""
    bullets: list[str] = []
    days = (numbers["period_end"] - numbers["period_start"]).days + 1
    if numbers["events"] == 0:
        return [
            f"No usage was recorded in the last {days} days ({numbers['period_start']} to {numbers['period_end']})."
        ]
    change = numbers["events_change_pct"]
    trend = "" if change is None else f", {_signed(change)} on the {days} days before"
    bullets.append(
        f"{numbers['events']:,} events in the last {days} days across {numbers['features_active']:,} features{trend}."
    )
    if numbers["top_features"]:
        top = numbers["top_features"][0]
        share = top["events"] / numbers["events"] * 100 if numbers["events"] else 0
        bullets.append(f"Most used feature: {top['name']} with {top['events']:,} events ({share:.0f} % of all usage).")
    users_change = _pct(numbers["avg_daily_active_users"], numbers["previous_avg_daily_active_users"])
    duration = numbers["avg_session_duration"]
    bullets.append(
        f"On average {numbers['avg_daily_active_users']:g} users were active per day"
        + ("" if users_change is None else f" ({_signed(users_change)})")
        + ("." if duration is None else f"; sessions lasted {duration:g} s on average.")
    )
    if numbers["rising"]:
        f = numbers["rising"][0]
        bullets.append(f"Fastest growing: {f['name']} ({_signed(f['change_pct'])}, {f['events']:,} events).")
    if numbers["falling"]:
        f = numbers["falling"][0]
        bullets.append(f"Biggest decline: {f['name']} ({_signed(f['change_pct'])}, {f['events']:,} events).")
    if numbers["open_anomalies"]:
        a = numbers["top_anomalies"][0]
        why = f"; {a['explanation']}" if a["explanation"] else ""
        bullets.append(
            f"{numbers['open_anomalies']} open anomal{'y' if numbers['open_anomalies'] == 1 else 'ies'}; latest: "
            f"a {a['direction']} in {a['metric'].replace('_', ' ')} of {a['feature']} on {a['date']} "
            f"({_value_vs_expected(a)}, {a['severity']}{why})."
        )
    else:
        bullets.append("No open anomalies.")
    return bullets[:MAX_BULLETS]


def _value_vs_expected(anomaly: dict[str, Any]) -> str:
    if anomaly["expected"] is None:
        return f"{anomaly['value']:g}"
    return f"{anomaly['value']:g} vs {anomaly['expected']:g} expected"


def prompt_build(numbers: dict[str, Any]) -> str:
    def feature_line(f: dict[str, Any]) -> str:
        return f"- {f['name']}: {f['events']} events (change {_signed(f['change_pct'])})"

    parts = [
        "You are a product analyst. Write 3 to 6 short bullet points (one line each, starting with '- ') "
        "about this organisation's product usage. Use only the numbers given; do not invent any. "
        "Mention notable trends and open anomalies and suggest one action.",
        f"Period: {numbers['period_start']} to {numbers['period_end']}.",
        f"Events: {numbers['events']} (previous period {numbers['previous_events']}, "
        f"change {_signed(numbers['events_change_pct'])}).",
        f"Average daily active users: {numbers['avg_daily_active_users']} "
        f"(previous {numbers['previous_avg_daily_active_users']}).",
        *(
            []
            if numbers["avg_session_duration"] is None
            else [f"Average session duration: {numbers['avg_session_duration']} s."]
        ),
        "Top features:",
        *[feature_line(f) for f in numbers["top_features"]],
    ]
    if numbers["rising"]:
        parts += ["Rising:", *[feature_line(f) for f in numbers["rising"]]]
    if numbers["falling"]:
        parts += ["Falling:", *[feature_line(f) for f in numbers["falling"]]]
    parts.append(f"Open anomalies: {numbers['open_anomalies']}.")
    for a in numbers["top_anomalies"]:
        parts.append(
            f"- {a['date']} {a['feature']} {a['metric']}: {_value_vs_expected(a)} "
            f"({a['direction']}, {a['severity']})" + (f"; {a['explanation']}" if a["explanation"] else "")
        )
    return "\n".join(parts)


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
# Markdown emphasis around words (`**Usage rose**: …`, `*now*`), which Gemini likes in
# bullets: the page shows bullets as text, so the markers would be left as stray asterisks.
_EMPHASIS = re.compile(r"(\*\*|\*)(\S(?:.*?\S)?)\1")


def bullets_parse(text: str) -> list[str]:
    bullets: list[str] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        cleaned = _EMPHASIS.sub(r"\2", _BULLET.sub("", line)).strip().strip("*").strip()
        if cleaned:
            bullets.append(cleaned)
    return bullets[:MAX_BULLETS]


def gemini_generate(prompt: str) -> str:
    """One call to Gemini through google-genai, bounded by GEMINI_TIMEOUT_SECONDS and
    never retried (the fallback is cheaper than waiting). Raises on any failure."""
    from google import genai
    from google.genai import types

    http_options = types.HttpOptions(
        timeout=int(settings.GEMINI_TIMEOUT_SECONDS * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    base_url = settings.GEMINI_BASE_URL
    if base_url:
        http_options.base_url = base_url
    client = genai.Client(api_key=settings.GEMINI_API_KEY, http_options=http_options)
    try:
        # 2.5 Flash "thinks" by default, and thinking tokens count against
        # max_output_tokens: a summary of given numbers needs none, and without it the answer
        # arrives well inside the timeout. (Pro models cannot switch it off.)
        thinking = types.ThinkingConfig(thinking_budget=0) if "flash" in settings.GEMINI_MODEL else None
        config = types.GenerateContentConfig(temperature=0.2, max_output_tokens=1024, thinking_config=thinking)
        response = client.models.generate_content(model=settings.GEMINI_MODEL, contents=prompt, config=config)
        return response.text or ""
    finally:
        client.close()


def insight_generate(org: Organization, *, end: date | None = None) -> Insight:
    """Build the numbers, ask Gemini when a key is configured, fall back to heuristics, store."""
    numbers = narrative_numbers(org, end=end)
    bullets: list[str] = []
    source, model = Insight.Source.HEURISTIC, ""
    if settings.GEMINI_API_KEY and numbers["events"]:
        try:
            bullets = bullets_parse(gemini_generate(prompt_build(numbers)))
            if bullets:
                source, model = Insight.Source.GEMINI, settings.GEMINI_MODEL
            else:
                logger.warning("gemini returned no bullets for org %s; using heuristics", org.id)
        except Exception as exc:  # any failure of the model call degrades to heuristics, logged
            logger.warning("gemini call failed for org %s (%s: %s); using heuristics", org.id, type(exc).__name__, exc)
            bullets = []
    if not bullets:
        bullets = heuristic_bullets(numbers)
    summary = bullets[0] if bullets else ""
    return Insight.objects.create(
        organization=org,
        period_start=numbers["period_start"],
        period_end=numbers["period_end"],
        source=source,
        model=model,
        bullets=bullets,
        summary=summary,
        open_anomalies=numbers["open_anomalies"],
    )


def insight_current(org: Organization, *, refresh: bool = False) -> Insight:
    """The organisation's narrative, at most INSIGHTS_CACHE_TTL seconds old and written with
    today's count of open anomalies: from the cache, else newly generated (refresh=True
    always regenerates)."""
    key = cache_key(org)
    if not refresh:
        open_now = anomalies_open_count(org)
        cached = cache.get(key)
        if cached is not None and cached.open_anomalies == open_now:
            return cached
        stored = _insight_recent(org) if cached is None else None
        if stored is not None and stored.open_anomalies == open_now:
            return stored
    insight = insight_generate(org)
    cache.set(key, insight, timeout=settings.INSIGHTS_CACHE_TTL)
    return insight


def _insight_recent(org: Organization) -> Insight | None:
    """The stored insight when it is still young enough to be current (re-cached for the rest
    of its time). The cache can lose it (evicted, Redis restarted or unreachable); without
    this, every page view would then generate, store and pay Gemini for a new one."""
    ttl = settings.INSIGHTS_CACHE_TTL
    if ttl <= 0:
        return None
    now = timezone.now()
    stored = Insight.objects.filter(organization=org, created_at__gt=now - timedelta(seconds=ttl)).first()
    if stored is not None:
        remaining = ttl - (now - stored.created_at).total_seconds()
        cache.set(cache_key(org), stored, timeout=max(1, int(remaining)))
    return stored


def insight_payload(insight: Insight) -> dict[str, Any]:
    return {
        "source": insight.source,
        "model": insight.model,
        "bullets": list(insight.bullets or []),
        "summary": insight.summary,
        "generated_at": insight.created_at.isoformat(),
        "open_anomalies": insight.open_anomalies or 0,
        "period_start": insight.period_start.isoformat(),
        "period_end": insight.period_end.isoformat(),
    }
