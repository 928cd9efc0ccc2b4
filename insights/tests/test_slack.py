"""Slack-format bodies: every value put into mrkdwn is escaped the way Slack asks (`&`, `<`,
`>`), so a feature or rule name set through ingestion cannot ping @channel or show a
disguised link, in the blocks or in the `text` fallback."""

from insights import slack

HOSTILE = "<!channel> <https://evil.example|Reset password>"
ESCAPED = "&lt;!channel&gt; &lt;https://evil.example|Reset password&gt;"


def _mrkdwn_texts(message):
    texts = [message["text"]]
    for block in message["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts += [element["text"] for element in block["elements"]]
    return texts


def _assert_inert(message):
    for text in _mrkdwn_texts(message):
        assert "<" not in text and ">" not in text, text


def test_anomaly_feature_name_is_escaped():
    anomaly = {"feature_name": HOSTILE, "metric": "event_count", "date": "2026-12-01", "value": 9, "expected": 3}
    message = slack.slack_message("anomaly.created", {"anomalies": [anomaly]})
    _assert_inert(message)
    assert ESCAPED in message["blocks"][1]["text"]["text"]
    assert ESCAPED in message["text"]


def test_anomaly_says_why_and_how_many_are_open():
    """The Slack body left out the explanation and the open count that the e-mail and the
    JSON body carry (README: each anomaly says why, in the alert e-mail and webhook)."""
    anomaly = {
        "feature_name": "Export", "metric": "event_count", "date": "2026-12-01", "value": 90, "expected": 30,
        "explanation": f"mostly event type “{HOSTILE}” (90 % of the change; usually 10 % of usage)",
    }  # fmt: skip
    message = slack.slack_message("anomaly.created", {"anomalies": [anomaly], "open_anomalies": 7})
    _assert_inert(message)
    assert f"\nmostly event type “{ESCAPED}” (90 % of the change" in message["blocks"][1]["text"]["text"]
    assert message["blocks"][-1]["elements"][0]["text"].endswith("open anomalies now: 7")


def test_an_anomaly_without_a_baseline_says_no_expected_value():
    anomaly = {
        "feature_name": "Export",
        "metric": "event_count",
        "date": "2026-12-01",
        "value": 90,
        "expected": None,
        "severity": "high",
    }
    text = slack.slack_message("anomaly.created", {"anomalies": [anomaly]})["blocks"][1]["text"]["text"]
    assert "expected" not in text and "None" not in text and ": 90 (" in text


def test_alert_rule_name_message_and_organisation_are_escaped():
    firing = {"rule_name": 'sessions <b>bold</b> & "quote"', "day": "2026-12-01", "message": f"Events of {HOSTILE}"}
    message = slack.slack_message("alert.fired", {"organization": "A&B <Corp>", "firings": [firing]})
    _assert_inert(message)
    section = message["blocks"][1]["text"]["text"]
    assert '*sessions &lt;b&gt;bold&lt;/b&gt; &amp; "quote"*' in section and ESCAPED in section
    assert "A&amp;B &lt;Corp&gt;" in message["text"]
    # The header is plain_text, which Slack shows literally: no entities there.
    header = message["blocks"][0]["text"]
    assert header["type"] == "plain_text" and header["text"].endswith("in A&B <Corp>")


def test_export_and_unknown_events_are_escaped():
    _assert_inert(slack.slack_message("export.daily", {"date": HOSTILE, "events": 1200, "open_anomalies": "<x>"}))
    _assert_inert(slack.slack_message("<!here>", {}))
