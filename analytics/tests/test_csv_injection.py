"""CSV exports do not carry spreadsheet formulas: an end user id and a feature name sent as
`=HYPERLINK(…)` come out of every `?format=csv` export as text (a leading apostrophe)."""

import csv
import io

import pytest

from core.days import today

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://x","y")'
BASE = "/api/v1/analytics"


def _csv(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_formulas_are_escaped_in_every_export(key_client, admin_client, analyst_client, org):
    events = [
        {"feature": FORMULA, "user_id": FORMULA, "session_duration": 30},
        {"feature": FORMULA, "user_id": "-7", "session_duration": 10},
    ]
    assert key_client.post("/api/v1/events/batch", {"events": events}, format="json").status_code in (200, 201)
    day = today().isoformat()
    assert admin_client.post(f"{BASE}/aggregate/run?date={day}").status_code == 200

    users = _csv(analyst_client, f"{BASE}/user-activity?format=csv")
    by_id = {row["user_id"]: row for row in users}
    assert set(by_id) == {"'" + FORMULA, "'-7"}
    assert by_id["'" + FORMULA]["top_feature"] == "hyperlinkhttpxy"  # a key: slugs cannot start with =

    (feature_row,) = _csv(analyst_client, f"{BASE}/feature-usage?start={day}&end={day}&format=csv")
    assert feature_row["feature_name"] == "'" + FORMULA
    assert feature_row["events"] == "2"  # numbers stay numbers

    points = _csv(analyst_client, f"{BASE}/timeseries?start={day}&end={day}&format=csv")
    assert points == [{"date": day, "value": "2"}]

    # The JSON answers are the data as sent: escaping is for spreadsheets only.
    body = analyst_client.get(f"{BASE}/user-activity").json()
    assert FORMULA in {row["user_id"] for row in body["results"]}
