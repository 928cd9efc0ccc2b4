"""Slack-compatible incoming-webhook messages (`{"text", "blocks"}`) for the webhook events.

A webhook flagged `format="slack"` gets this body instead of the signed JSON envelope: Slack,
Mattermost and Rocket.Chat incoming webhooks accept it as is. `text` is the notification
fallback; `blocks` carry one section per item. Slack refuses more than 50 blocks, so long
lists are cut at MAX_ITEMS with a closing "…and N more". Imports nothing from insights, so
the delivery code can use it without a cycle."""

from typing import Any

MAX_ITEMS = 20
APP_NAME = "Usage Platform"


def _section(markdown: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown[:3000]}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _listed(title: str, lines: list[str], footer: str) -> dict[str, Any]:
    blocks = [_header(title)]
    blocks += [_section(line) for line in lines[:MAX_ITEMS]]
    if len(lines) > MAX_ITEMS:
        blocks.append(_context(f"…and {len(lines) - MAX_ITEMS} more."))
    blocks.append(_context(footer))
    text = title if not lines else f"{title}: {lines[0]}" + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")
    return {"text": text, "blocks": blocks}


def _alert_fired(data: dict[str, Any]) -> dict[str, Any]:
    firings = data.get("firings") or []
    org = data.get("organization") or f"organisation {data.get('organization_id')}"
    title = f"{len(firings)} alert rule{'' if len(firings) == 1 else 's'} fired in {org}"
    lines = [f"*{f['rule_name']}* ({f['day']}): {f['message']}" for f in firings]
    return _listed(title, lines, f"{APP_NAME} · alert rules")


def _anomaly_created(data: dict[str, Any]) -> dict[str, Any]:
    anomalies = data.get("anomalies") or []
    title = f"{len(anomalies)} new anomal{'y' if len(anomalies) == 1 else 'ies'}"
    lines = [
        f"*{a.get('feature_name') or 'All features'}* {a.get('metric')} on {a.get('date')}: "
        f"{a.get('value')} (expected {a.get('expected')}, {a.get('severity')})"
        for a in anomalies
    ]
    return _listed(title, lines, f"{APP_NAME} · anomalies")


def _export_daily(data: dict[str, Any]) -> dict[str, Any]:
    title = f"Daily usage for {data.get('date')}"
    line = (
        f"*{data.get('events', 0):,}* events · *{data.get('active_users', 0):,}* active users · "
        f"*{data.get('sessions', 0):,}* sessions · {data.get('open_anomalies', 0)} open anomalies"
    )
    return _listed(title, [line], f"{APP_NAME} · daily export")


FORMATTERS = {"alert.fired": _alert_fired, "anomaly.created": _anomaly_created, "export.daily": _export_daily}


def slack_message(event: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Slack body for one webhook event (`{"text", "blocks"}`)."""
    formatter = FORMATTERS.get(event)
    if formatter is None:
        return {"text": f"{APP_NAME}: {event}", "blocks": [_section(f"{APP_NAME}: `{event}`")]}
    return formatter(data)
