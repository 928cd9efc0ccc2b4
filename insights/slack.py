"""Slack-compatible incoming-webhook messages (`{"text", "blocks"}`) for the webhook events.

A webhook flagged `format="slack"` gets this body instead of the signed JSON envelope: Slack,
Mattermost and Rocket.Chat incoming webhooks accept it as is. `text` is the notification
fallback; `blocks` carry one section per item. Slack refuses more than 50 blocks, so long
lists are cut at MAX_ITEMS with a closing "…and N more". Imports nothing from insights, so
the delivery code can use it without a cycle.

Every value put into mrkdwn (the sections, the context and the `text` fallback) goes through
`escape`: feature names and keys come from ingestion, where anyone holding an ingestion key
(a browser key is public) sets them, and Slack reads `<!channel>` or `<https://…|label>` in
them as a mention or a disguised link. The header is `plain_text`, which Slack shows as is."""

from typing import Any

MAX_ITEMS = 20
APP_NAME = "Usage Platform"


def escape(value: object) -> str:
    """`value` as literal text inside Slack mrkdwn: Slack's three control characters escaped
    (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(markdown: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": markdown[:3000]}}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _listed(title: str, lines: list[str], footer: str) -> dict[str, Any]:
    """`title` is plain text (escaped here for the `text` fallback); `lines` are mrkdwn
    whose values the caller has escaped."""
    blocks = [_header(title)]
    blocks += [_section(line) for line in lines[:MAX_ITEMS]]
    if len(lines) > MAX_ITEMS:
        blocks.append(_context(f"…and {len(lines) - MAX_ITEMS} more."))
    blocks.append(_context(footer))
    text = escape(title)
    if lines:
        text += f": {lines[0]}" + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")
    return {"text": text, "blocks": blocks}


def firings_title(firings: list[dict[str, Any]]) -> str:
    """What a batch of firings is, counted right: a firing is one rule on one day, so
    "22 alerts from 8 rules", "3 alerts from rule “Quiet day”", "1 alert from rule …"
    (also the alert e-mail's subject)."""
    rules = {f.get("rule_id", f.get("rule_name")): f.get("rule_name") for f in firings}
    alerts = f"{len(firings)} alert{'' if len(firings) == 1 else 's'}"
    if len(rules) == 1:
        return f"{alerts} from rule “{next(iter(rules.values()))}”"
    return f"{alerts} from {len(rules)} rules"


def _alert_fired(data: dict[str, Any]) -> dict[str, Any]:
    firings = data.get("firings") or []
    org = data.get("organization") or f"organisation {data.get('organization_id')}"
    title = f"{firings_title(firings)} in {org}"
    lines = [f"*{escape(f['rule_name'])}* ({escape(f['day'])}): {escape(f['message'])}" for f in firings]
    return _listed(title, lines, f"{APP_NAME} · alert rules")


def _anomaly_created(data: dict[str, Any]) -> dict[str, Any]:
    anomalies = data.get("anomalies") or []
    title = f"{len(anomalies)} new anomal{'y' if len(anomalies) == 1 else 'ies'}"
    # With the why and the open count, as the e-mail and the JSON body carry them; the why
    # names segment values that come from ingestion, so it is escaped like the rest.
    lines = [
        f"*{escape(a.get('feature_name') or 'All features')}* {escape(a.get('metric'))} on {escape(a.get('date'))}: "
        f"{escape(a.get('value'))} ("
        + ("" if a.get("expected") is None else f"expected {escape(a.get('expected'))}, ")
        + f"{escape(a.get('severity'))})"
        + (f"\n{escape(a['explanation'])}" if a.get("explanation") else "")
        for a in anomalies
    ]
    footer = f"{APP_NAME} · anomalies"
    if data.get("open_anomalies") is not None:
        footer += f" · open anomalies now: {_count(data['open_anomalies'])}"
    return _listed(title, lines, footer)


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int | float) else escape(value if value is not None else 0)


def _export_daily(data: dict[str, Any]) -> dict[str, Any]:
    title = f"Daily usage for {data.get('date')}"
    line = (
        f"*{_count(data.get('events'))}* events · *{_count(data.get('active_users'))}* active users · "
        f"*{_count(data.get('sessions'))}* sessions · {_count(data.get('open_anomalies'))} open anomalies"
    )
    return _listed(title, [line], f"{APP_NAME} · daily export")


FORMATTERS = {"alert.fired": _alert_fired, "anomaly.created": _anomaly_created, "export.daily": _export_daily}


def slack_message(event: str, data: dict[str, Any]) -> dict[str, Any]:
    """The Slack body for one webhook event (`{"text", "blocks"}`)."""
    formatter = FORMATTERS.get(event)
    if formatter is None:
        return {"text": f"{APP_NAME}: {escape(event)}", "blocks": [_section(f"{APP_NAME}: `{escape(event)}`")]}
    return formatter(data)
