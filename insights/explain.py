"""Anomalies that say why: the segment that carries most of a time-series anomaly's change.

For an anomaly of feature F on day D, the events of F on D and on the baseline days the
detector compared D with (the same weekday of the previous BASELINE_WEEKS weeks) are grouped
by each dimension — event type, age band, gender, account (when end users have one),
feature (for an anomaly of all features), and the few end-user and event properties that
look like categories. Those are one feature's events on seven days (for a feature with
under SPARSE_PER_DAY a day, every day of the six weeks): a bounded read on the
(organisation, feature, timestamp) index, grouped in the database. The daily rollups carry
no segments, so the whole-feature figures (value, expected) come from the anomaly, which
the detector took from the rollups.

For a count (events, daily active users) a segment s expected to hold its usual share p_s
of the expected value E contributes Δ_s = v_s − p_s·E to the change Δ = V − E, and its
share of the change is Δ_s / Δ (the shares add up to 1). For the mean session length m,
Δ_s = (N_s/N)·(m_s − m_expected), which adds up exactly to m − m_expected, and its usual
share is its weight N_s/N. A change spread evenly gives every segment a share of the change
equal to its usual share, so segments are ranked by how much more of the change they carry
than of the usage (share − usual share): the segment that explains the change is the one
most out of proportion, not merely the biggest. It is reported as *the* reason
(`concentrated`) when it carries at least half of the change and the rest of the usage
moved at most half as much as the whole did: (share − usual) / (1 − usual) ≥ 0.5, which is
1 when everything outside the segment stayed as usual and 0 for an even change.
"""

import logging
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Case, CharField, Count, F, Model, Q, QuerySet, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Abs, Cast, TruncDate

from telemetry.models import EndUser, Feature, UsageEvent
from tenants.models import Organization

from .models import Anomaly

logger = logging.getLogger(__name__)

# The detector's baseline: the same weekday over this many previous weeks
# (detectors.BASELINE_WEEKS; repeated so reading this module does not load numpy).
BASELINE_WEEKS = 6
# A segment is named as the reason when it carries at least this share of the change and
# the rest of the usage moved at most (1 − CONCENTRATED_LIFT) as much as the whole (module
# docstring); otherwise the change is reported as spread across segments.
CONCENTRATED_SHARE = 0.5
CONCENTRATED_LIFT = 0.5
# Segments kept with each explanation, best first.
TOP_SEGMENTS = 3
# Property keys looked at, per source (end user, event): the ones most events carry in a
# sample of the anomaly's day, if they look like categories (scalar values, at most
# MAX_PROPERTY_VALUES distinct values in the sample and not nearly one per event).
PROPERTY_KEYS = 3
PROPERTY_SAMPLE = 500
MAX_PROPERTY_VALUES = 25
MAX_PROPERTY_KEY_LENGTH = 64
# Anomalies explained per detection run, strongest first: each costs about ten small
# grouped reads, and the ones left over are explained by the next run.
MAX_EXPLAINED_PER_RUN = 50
# Under this many a day (the anomaly's expected value), six same weekdays hold too few events
# to show a feature's usual mix (often none), so every day of those six weeks is read
# instead: at most ~200 events of one feature.
SPARSE_PER_DAY = 5.0
NONE_LABEL = "(none)"
# The age bands of the analytics filters (analytics.params.AGE_BANDS).
AGE_BANDS = (("<18", Q(end_user__age__lt=18)), ("18-40", Q(end_user__age__lte=40)), (">40", Q(end_user__age__gt=40)))
GENDER_LABELS = dict(EndUser.Gender.choices)
# (share of the change, usual share, value on the day, expected value) of one segment.
Contribution = tuple[float, float, float, float]
COUNT_METRICS = {"event_count": "events", "daily_active_users": "users"}


def anomalies_explain(org: Organization, *, start: date, end: date) -> int:
    """Explain the time-series anomalies of [start, end] that have no explanation yet
    (new, or their numbers changed), strongest first, at most MAX_EXPLAINED_PER_RUN.
    Returns how many were explained."""
    pending = list(
        Anomaly.objects.filter(
            organization=org, detector="timeseries", date__gte=start, date__lte=end, explanation__isnull=True
        )
        .order_by(Abs("score").desc(), "id")
        .only("id", "feature_id", "date", "metric", "value", "expected", "score")[:MAX_EXPLAINED_PER_RUN]
    )
    for anomaly in pending:
        explanation = anomaly_explanation(org, anomaly)
        Anomaly.objects.filter(pk=anomaly.pk).update(explanation=explanation)
    return len(pending)


def baseline_days(anomaly: Anomaly) -> list[date]:
    """The days the anomaly's day is compared with: the detector's same weekdays, or, for a
    feature too quiet for them to show its usual mix, every day of those weeks."""
    day = anomaly.date
    if anomaly.metric in COUNT_METRICS and (anomaly.expected or 0) < SPARSE_PER_DAY:
        return [day - timedelta(days=n) for n in range(1, BASELINE_WEEKS * 7 + 1)]
    return [day - timedelta(weeks=k) for k in range(1, BASELINE_WEEKS + 1)]


def anomaly_explanation(org: Organization, anomaly: Anomaly) -> dict[str, Any]:
    """The explanation stored with `anomaly`: the best segment (or None when no events
    back the day), the next ones, and what was compared."""
    day, before = anomaly.date, baseline_days(anomaly)
    events = _events(org, anomaly.feature_id, [day, *before])
    dimensions = _dimensions(
        events.filter(_day_range(day)), events.exclude(_day_range(day)), feature_level=anomaly.feature_id is None
    )
    candidates = []
    for dimension, expression in dimensions:
        rows = _grouped(events, expression)
        candidates += _segments(dimension, rows, anomaly=anomaly, day=day)
    candidates = [c for c in candidates if c["share_of_change"] > 0]
    # Most out of proportion first; among equals (two names for the same events), a value
    # before "(none)", then the larger share.
    candidates.sort(
        key=lambda c: (
            -round(c["share_of_change"] - c["usual_share"], 6),
            c["value"] == NONE_LABEL,
            -c["share_of_change"],
            c["dimension"],
            c["value"],
        )
    )
    top = candidates[:TOP_SEGMENTS]
    _account_labels(top)
    best = top[0] if top else None
    return {
        "segment": best,
        "concentrated": best is not None and _concentrated(best),
        "segments": top,
        "day": day.isoformat(),
        "baseline_days": [d.isoformat() for d in before],
        "dimensions": [name for name, _ in dimensions],
    }


def _concentrated(segment: dict[str, Any]) -> bool:
    share, usual = segment["share_of_change"], segment["usual_share"]
    if share < CONCENTRATED_SHARE or usual >= 1.0:  # a segment that is all the usage says nothing
        return False
    return (share - usual) / (1.0 - usual) >= CONCENTRATED_LIFT


def explanation_phrase(explanation: dict[str, Any] | None) -> str | None:
    """One line for tables, the narrative and digests, e.g. 'mostly gender “Female” (82 % of
    the change; usually 35 % of usage)'. A segment can carry more than the whole change
    when the rest moved the other way: said so, not as a share over 100 %."""
    if not explanation or not explanation.get("segment"):
        return None
    segment = explanation["segment"]
    share, usual = segment["share_of_change"] * 100, segment["usual_share"] * 100
    of_change = (
        f"{share:.0f} % of the change, more than all of it as the rest moved the other way"
        if share > 100.5
        else f"{share:.0f} % of the change"
    )
    shares = f"{of_change}; usually {usual:.0f} % of usage"
    if explanation.get("concentrated"):
        return f"mostly {segment['label']} ({shares})"
    return f"spread across segments; largest: {segment['label']} ({shares})"


# --- Reads ------------------------------------------------------------------------------------


def _day_range(day: date) -> Q:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return Q(timestamp__gte=start, timestamp__lt=start + timedelta(days=1))


def _events(org: Organization, feature_id: int | None, days: list[date]) -> QuerySet[UsageEvent]:
    ranges = Q()
    for first, last in _runs(sorted(days)):
        start = datetime.combine(first, time.min, tzinfo=UTC)
        ranges |= Q(timestamp__gte=start, timestamp__lt=start + timedelta(days=(last - first).days + 1))
    events = UsageEvent.objects.filter(ranges, organization=org)
    if feature_id is not None:
        events = events.filter(feature_id=feature_id)
    return events


def _runs(days: list[date]) -> list[tuple[date, date]]:
    """Sorted days → (first, last) of each run of consecutive days: one range per run."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _has_accounts() -> bool:
    """End users carry an account once the accounts work has landed; until then there is
    nothing to group by."""
    try:
        field = EndUser._meta.get_field("account")
    except Exception:  # FieldDoesNotExist: no account dimension on this schema
        return False
    return field.is_relation


def _dimensions(
    day_events: QuerySet[UsageEvent],
    baseline_events: QuerySet[UsageEvent],
    *,
    feature_level: bool,
) -> list[tuple[str, Any]]:
    """(name, expression giving the segment value: an F, Case, Cast or JSON key) for every
    dimension looked at."""
    age = Case(
        *[When(condition, then=Value(band)) for band, condition in AGE_BANDS],
        default=Value(None),
        output_field=CharField(),
    )
    dimensions = [
        ("event_type", F("event_type")),
        ("age", age),
        ("gender", F("end_user__gender")),
    ]
    if feature_level:
        dimensions.insert(0, ("feature", Cast("feature_id", CharField())))
    if _has_accounts():
        dimensions.append(("account", Cast("end_user__account_id", CharField())))
    user_keys, event_keys = _property_keys(day_events, baseline_events)
    dimensions += [(f"user.{key}", KeyTextTransform(key, "end_user__properties")) for key in user_keys]
    dimensions += [(f"event.{key}", KeyTextTransform(key, "metadata")) for key in event_keys]
    return dimensions


def _property_keys(
    day_events: QuerySet[UsageEvent], baseline_events: QuerySet[UsageEvent]
) -> tuple[list[str], list[str]]:
    """The end-user and event property keys worth grouping by, from a sample of the day and
    one of the baseline days (a key only the vanished events had explains a drop)."""
    half = PROPERTY_SAMPLE // 2
    sample = [
        *day_events.order_by().values_list("end_user__properties", "metadata")[:half],
        *baseline_events.order_by().values_list("end_user__properties", "metadata")[:half],
    ]
    return (
        _categorical_keys([user for user, _ in sample], len(sample)),
        _categorical_keys([meta for _, meta in sample], len(sample)),
    )


def _categorical_keys(documents: list[Any], sampled: int) -> list[str]:
    values: dict[str, set] = {}
    coverage: dict[str, int] = {}
    for document in documents:
        if not isinstance(document, dict):
            continue
        for key, value in document.items():
            if not isinstance(key, str) or len(key) > MAX_PROPERTY_KEY_LENGTH or isinstance(value, dict | list):
                continue
            values.setdefault(key, set()).add(str(value))
            coverage[key] = coverage.get(key, 0) + 1
    keys = [
        key
        for key, seen in values.items()
        if len(seen) <= MAX_PROPERTY_VALUES and (len(seen) <= 2 or len(seen) <= sampled / 2)
    ]
    keys.sort(key=lambda key: (-coverage[key], key))
    return keys[:PROPERTY_KEYS]


def _grouped(events: QuerySet[UsageEvent], expression: Any) -> list[dict[str, Any]]:
    """Per (day, segment value): events, distinct end users, Σ durations and timed events."""
    return list(
        events.annotate(day=TruncDate("timestamp", tzinfo=UTC), segment=expression)
        .values("day", "segment")
        .annotate(
            events=Count("id"),
            users=Count("end_user_id", distinct=True),
            duration=Sum("session_duration"),
            timed=Count("session_duration"),
        )
        .order_by()
    )


# --- The arithmetic -------------------------------------------------------------------------


def _segments(dimension: str, rows: list[dict[str, Any]], *, anomaly: Anomaly, day: date) -> list[dict[str, Any]]:
    """Every value of one dimension with its share of the anomaly's change and its usual
    share (module docstring)."""
    on_day: dict[str, dict] = {}
    before: dict[str, dict] = {}
    for row in rows:
        key = NONE_LABEL if row["segment"] in (None, "") else str(row["segment"])
        target = on_day if _as_date(row["day"]) == day else before
        slot = target.setdefault(key, {"events": 0, "users": 0, "duration": 0.0, "timed": 0})
        for name in slot:
            slot[name] += row[name] or 0
    if anomaly.metric in COUNT_METRICS:
        contributions = _count_contributions(COUNT_METRICS[anomaly.metric], on_day, before, anomaly)
    else:
        contributions = _mean_contributions(on_day, anomaly)
    return [
        {
            "dimension": dimension,
            "value": key,
            "label": segment_label(dimension, key),
            "share_of_change": round(share, 4),
            "usual_share": round(usual, 4),
            "value_on_day": value_on_day,
            "expected": round(expected, 2),
        }
        for key, (share, usual, value_on_day, expected) in contributions.items()
    ]


def _count_contributions(
    column: str, on_day: dict[str, dict[str, float]], before: dict[str, dict[str, float]], anomaly: Anomaly
) -> dict[str, Contribution]:
    """{segment: (share of change, usual share, value on the day, expected value)}.

    Daily active users of event-level segments (event type, event properties) overlap: a
    user who did two event types counts in both. Their sum on the day is the day's value
    times an overlap factor k, and the expected value is scaled by the same k, so the
    shares still add up to 1."""
    baseline_total = sum(s[column] for s in before.values())
    day_total = sum(s[column] for s in on_day.values())
    value = float(anomaly.value)
    expected = float(anomaly.expected or 0.0)
    overlap = day_total / value if value > 0 and day_total > 0 else 1.0
    change = (day_total - expected * overlap) if day_total else (value - expected)
    if not change or not baseline_total and not day_total:
        return {}
    result = {}
    for key in set(on_day) | set(before):
        usual = before.get(key, {}).get(column, 0) / baseline_total if baseline_total else 0.0
        observed = on_day.get(key, {}).get(column, 0)
        expected_here = usual * expected * overlap
        result[key] = ((observed - expected_here) / change, usual, observed, expected_here)
    return result


def _mean_contributions(on_day: dict[str, dict[str, float]], anomaly: Anomaly) -> dict[str, Contribution]:
    """For the mean session length: (N_s/N)·(m_s − m_expected) / (m − m_expected)."""
    timed = sum(s["timed"] for s in on_day.values())
    if not timed:
        return {}
    expected = float(anomaly.expected or 0.0)
    mean = sum(s["duration"] for s in on_day.values()) / timed
    change = mean - expected
    if not change:
        return {}
    result = {}
    for key, slot in on_day.items():
        if not slot["timed"]:
            continue
        weight = slot["timed"] / timed
        segment_mean = slot["duration"] / slot["timed"]
        result[key] = (weight * (segment_mean - expected) / change, weight, round(segment_mean, 2), expected)
    return result


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


# --- Labels ------------------------------------------------------------------------------------

DIMENSION_LABELS = {"event_type": "event type", "age": "age", "gender": "gender", "account": "account"}


def segment_label(dimension: str, value: str) -> str:
    if dimension == "gender":
        value = GENDER_LABELS.get(value, value)
    if dimension.startswith(("user.", "event.")):
        source, key = dimension.split(".", 1)
        return f"{source} {key} = {value}"
    return f"{DIMENSION_LABELS.get(dimension, dimension)} “{value}”"


def _account_labels(segments: list[dict[str, Any]]) -> None:
    """Account and feature segments are grouped by id; name them (one read each, for the
    few segments kept)."""
    for dimension, model, fields in (
        ("account", _account_model(), ("name", "external_id", "email")),
        ("feature", Feature, ("name", "key")),
    ):
        wanted = [s for s in segments if s["dimension"] == dimension and s["value"] != NONE_LABEL]
        if not wanted or model is None:
            continue
        names = [f for f in fields if any(x.name == f for x in model._meta.get_fields())]
        labels = {
            str(row["pk"]): next((row[f] for f in names if row[f]), str(row["pk"]))
            for row in model._default_manager.filter(pk__in=[s["value"] for s in wanted]).values("pk", *names)
        }
        for segment in wanted:
            segment["label"] = (
                f"{DIMENSION_LABELS.get(dimension, dimension)} “{labels.get(segment['value'], segment['value'])}”"
            )


def _account_model() -> type[Model] | None:
    related = EndUser._meta.get_field("account").related_model if _has_accounts() else None
    return related if isinstance(related, type) else None
