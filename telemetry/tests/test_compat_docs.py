"""The copy-paste snippets of docs/sdks.md run as written against a live server (only the
host and the key are replaced), and store what the page says they store."""

import re
from pathlib import Path

import pytest
import rudderstack.analytics as rudder_analytics
import segment.analytics as segment_analytics

from telemetry.models import Account, EndUser, UsageEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("sdk_connections_closed")]

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdks.md"


def _snippet(heading):
    """The first ```python block under `## heading`."""
    text = DOC.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _run(heading, live_server, key):
    code = _snippet(heading).replace("https://usage.example.com", live_server.url).replace("upk_your_key", key)
    exec(compile(code, f"docs/sdks.md ({heading})", "exec"), {})


@pytest.fixture
def module_clients():
    """The Segment and Rudder snippets configure the modules' default clients: reset after."""
    yield
    for module in (segment_analytics, rudder_analytics):
        if module.default_client is not None:
            module.default_client.join()
        module.default_client = None
        module.write_key = None


def _features(org):
    return set(UsageEvent.objects.filter(organization=org).values_list("feature__name", flat=True))


def test_posthog_python_snippet(live_server, raw_api_key, org):
    _run("posthog-python", live_server, raw_api_key)
    assert _features(org) == {"report-export", "search"}
    person = EndUser.objects.select_related("account").get(organization=org, external_id="user-42")
    assert person.email == "ada@example.com" and person.properties == {"plan": "pro"}
    assert person.account.name == "Acme Inc"


def test_segment_snippet(live_server, raw_api_key, org, module_clients):
    _run("Segment (analytics-python)", live_server, raw_api_key)
    assert _features(org) == {"Report Exported", "Pricing"}
    person = EndUser.objects.select_related("account").get(organization=org, external_id="user-42")
    assert (person.email, person.age, person.account.external_id) == ("ada@example.com", 36, "acme")


def test_rudderstack_snippet(live_server, raw_api_key, org, module_clients):
    _run("RudderStack (rudder-sdk-python)", live_server, raw_api_key)
    assert _features(org) == {"Report Exported"}
    assert EndUser.objects.get(organization=org, external_id="user-42").email == "ada@example.com"
    assert not Account.objects.filter(organization=org).exists()
