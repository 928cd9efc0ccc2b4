"""What the organisation is told: the anomaly digest (an e-mail to its admins and the
`anomaly.created` webhooks) after each detection run, and the daily KPI export
(`export.daily` webhooks). The alert rules' firings are delivered by
`insights.alerts.delivery`."""

from collections.abc import Iterable
from datetime import date
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from analytics.models import DailyFeatureUsage, DailyOrgUsage
from tenants.models import Organization, Role, User

from . import channels
from .explain import explanation_phrase
from .models import Anomaly
from .queries import ANOMALY_DETECTOR, anomalies_open, anomalies_open_count, unnotified_claimed
from .webhooks import webhooks_send


def anomaly_payload(anomaly: Anomaly) -> dict[str, Any]:
    feature = anomaly.feature
    explanation = anomaly.explanation or {}
    return {
        "id": anomaly.id,
        "date": anomaly.date.isoformat(),
        "feature_id": anomaly.feature_id,
        "feature_key": feature.key if feature else None,
        "feature_name": (feature.name or feature.key) if feature else None,
        "detector": anomaly.detector,
        "metric": anomaly.metric,
        "value": anomaly.value,
        "expected": anomaly.expected,
        "score": round(anomaly.score, 3),
        "severity": anomaly.severity,
        "direction": (anomaly.details or {}).get("direction"),
        "explanation": explanation_phrase(explanation),
        "segment": explanation.get("segment"),
    }


def admins_mail(org: Organization, *, subject: str, message: str) -> tuple[int, int]:
    """E-mail `message` to the organisation's active admins, raising when it cannot be sent
    (the caller's e-mail channel then leaves its rows to the next run): (messages sent,
    recipients)."""
    recipients = list(
        User.objects.filter(organization=org, role=Role.ADMIN, is_active=True).values_list("email", flat=True)
    )
    if not recipients:
        return 0, 0
    sent = send_mail(
        subject=subject,
        message=message,
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=recipients,
        fail_silently=False,
    )
    return sent, len(recipients)


def alerts_send(
    org: Organization, anomalies: Iterable[Anomaly] = (), *, unnotified_days: int | None = None
) -> dict[str, int]:
    """Notify about `anomalies` not yet notified whose |score| ≥ the organisation's
    alert_threshold: one signed POST per active `anomaly.created` webhook and one e-mail to
    the organisation's admins, each listing them all. With `unnotified_days`, every
    anomaly of that many last days a channel has not covered yet is included too (in the
    same query), so a run whose e-mail or enqueue failed is picked up by the next one. Each
    channel is sent and marked on its own (`insights.channels`): a failing one is logged and
    holds the other back no more. Only the time-series detector alerts: "outlier features"
    always names a tenth of the features, so it is a ranking to look at, not an event; and
    only open anomalies. Each digest also gives the open anomalies in total, counted as the
    Insights page and the narrative count them. Returns `{anomalies, emails, webhooks}`:
    the anomalies either channel covered."""
    given = list(anomalies)
    covered, emails, hooks = channels.digest_send(
        org,
        webhooks=("the anomaly.created webhooks", lambda: _anomalies_post(org, given, unnotified_days)),
        email=("the anomaly e-mail", lambda: _anomalies_email(org, given, unnotified_days)),
    )
    return {"anomalies": covered, "emails": emails, "webhooks": hooks}


def _anomalies_due(org: Organization, given: list[Anomaly], unnotified_days: int | None, *, mark: str) -> list[Anomaly]:
    due = list(
        unnotified_claimed(Anomaly, org, given, day_field="date", unnotified_days=unnotified_days, mark=mark)
        .filter(
            # Still open: one acknowledged or resolved before its digest went out was already
            # seen; listing it under "new anomalies" contradicted the open count below it.
            detector=ANOMALY_DETECTOR,
            status=Anomaly.Status.OPEN,
        )
        .select_related("feature")
        .order_by("-date", "id")
    )
    return [a for a in due if abs(a.score) >= org.alert_threshold]


def _anomalies_marked(due: list[Anomaly], mark: str) -> None:
    channels.rows_mark(due, mark)
    Anomaly.objects.bulk_update(due, [mark, "notified_at"])


@transaction.atomic  # the rows read are claimed until it ends (`unnotified_claimed`)
def _anomalies_post(org: Organization, given: list[Anomaly], unnotified_days: int | None) -> channels.Sent:
    """The webhook channel: (the anomalies it covered, webhooks)."""
    due = _anomalies_due(org, given, unnotified_days, mark=channels.WEBHOOKS)
    if not due:
        return set(), 0
    hooks = webhooks_send(
        org,
        "anomaly.created",
        lambda: {
            "organization_id": org.id,
            "anomalies": [anomaly_payload(a) for a in due],
            "open_anomalies": anomalies_open_count(org),
        },
    )
    _anomalies_marked(due, channels.WEBHOOKS)
    return {a.pk for a in due}, hooks


@transaction.atomic  # the rows read are claimed until it ends (`unnotified_claimed`)
def _anomalies_email(org: Organization, given: list[Anomaly], unnotified_days: int | None) -> channels.Sent:
    """The e-mail channel: (the anomalies it covered, e-mails)."""
    due = _anomalies_due(org, given, unnotified_days, mark=channels.EMAIL)
    if not due:
        return set(), 0
    payloads = [anomaly_payload(a) for a in due]
    lines = [
        f"- {p['date']} {p['feature_name']} {p['metric']}: {p['value']:.1f} ("
        + ("" if p["expected"] is None else f"expected {p['expected']:.1f}, ")
        + f"{p['direction']}, score {p['score']}, {p['severity']})"
        + (f"\n  {p['explanation']}" if p["explanation"] else "")
        for p in payloads
    ]
    emails, _recipients = admins_mail(
        org,
        subject=f"[Usage Platform] {len(due)} new anomal{'y' if len(due) == 1 else 'ies'} in {org.name}",
        message="New anomalies were detected in the daily usage rollups:\n\n"
        + "\n".join(lines)
        + f"\n\nOpen anomalies now: {anomalies_open_count(org)} (the Insights page lists them).",
    )
    _anomalies_marked(due, channels.EMAIL)
    return {a.pk for a in due}, emails


def daily_kpis(org: Organization, day: date) -> dict[str, Any]:
    org_row = DailyOrgUsage.objects.filter(organization=org, date=day).first()
    top = list(
        DailyFeatureUsage.objects.filter(organization=org, date=day)
        .order_by("-event_count", "feature_id")
        .values("feature__key", "event_count", "daily_active_users", "avg_session_duration")[:10]
    )
    return {
        "organization_id": org.id,
        "date": day.isoformat(),
        "events": org_row.event_count if org_row else 0,
        "active_users": org_row.active_users if org_row else 0,
        "sessions": org_row.sessions if org_row else 0,
        "avg_session_duration": round(org_row.avg_session_duration, 2) if org_row else 0.0,
        "open_anomalies": anomalies_open(org).filter(date=day).count(),
        "top_features": [
            {
                "feature_key": row["feature__key"],
                "events": row["event_count"],
                "daily_active_users": row["daily_active_users"],
                "avg_session_duration": round(row["avg_session_duration"], 2),
            }
            for row in top
        ],
    }


def export_daily(org: Organization, day: date) -> int:
    """Post the day's KPIs to every active `export.daily` webhook; returns how many."""
    return webhooks_send(org, "export.daily", lambda: daily_kpis(org, day))
