"""Feature keys and names, end-user and account ids with zero-width, bidi-override and other
invisible characters are refused: per item in ingestion (the rest of the batch is stored), and
in the Django admin."""

import pytest

from conftest import PASSWORD
from core.text import hidden_character
from telemetry.models import Feature
from telemetry.tests.helpers import BATCH, TRACK, event, post, stored
from tenants.models import User

pytestmark = pytest.mark.django_db

HIDDEN = [
    "\u200b",  # zero width space
    "\u200c",  # zero width non-joiner
    "\u200d",  # zero width joiner
    "\u200e",  # left-to-right mark
    "\u200f",  # right-to-left mark
    "\u202a",  # left-to-right embedding
    "\u202b",
    "\u202c",  # pop directional formatting
    "\u202d",  # left-to-right override
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u2067",
    "\u2068",
    "\u2069",  # pop directional isolate
    "\ufeff",  # byte order mark / zero width no-break space
    "\u2060",  # word joiner
    "\u00ad",  # soft hyphen
    "\u061c",  # arabic letter mark
    "\U000e0041",  # tag latin capital letter a
    "\u2028",  # line separator
    "\x1b",  # escape (a control character)
    "\t",
]
VISIBLE = ["export_pdf", "Café crème", "检索", "Экспорт", "🚀 launch", "a-b.c/d e"]


@pytest.mark.parametrize("char", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_hidden_characters_found(char):
    assert hidden_character(f"export{char}pdf") == char


@pytest.mark.parametrize("text", VISIBLE)
def test_visible_text_passes(text):
    assert hidden_character(text) is None


@pytest.mark.parametrize("char", HIDDEN, ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_batch_refuses_the_item_and_stores_the_rest(key_client, org, char):
    items = [event(feature="export_pdf"), event(feature=f"export{char}_pdf"), event(feature="search")]
    response = post(key_client, BATCH, items)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 2 and stored(org) == 2
    (error,) = body["errors"]
    assert (error["index"], error["field"]) == (1, "feature")
    assert f"U+{ord(char):04X}" in error["message"]
    assert set(Feature.objects.filter(organization=org).values_list("name", flat=True)) == {"export_pdf", "search"}


def test_track_answers_400_naming_the_character(key_client, org):
    response = post(key_client, TRACK, event(feature="\u202eexport"))
    assert response.status_code == 400
    body = response.json()
    assert "U+202E" in body["errors"]["feature"][0] and body["detail"]
    assert not Feature.objects.filter(organization=org).exists()


@pytest.mark.parametrize("name", VISIBLE)
def test_visible_names_are_accepted(key_client, org, name):
    assert post(key_client, TRACK, event(feature=name)).status_code == 201
    assert Feature.objects.filter(organization=org, name=name).exists()


@pytest.mark.parametrize("field", ["user_id", "account_id"])
@pytest.mark.parametrize("char", ["\u202e", "\u200b", "\x1b"], ids=["U+202E", "U+200B", "U+001B"])
def test_ids_shown_on_pages_refuse_hidden_characters(key_client, org, field, char):
    """A user or account id is shown on the pages, in exports and e-mails: `acme\u202e` would
    read as another. The item is refused naming the character; the rest of the batch stored."""
    from telemetry.models import Account, EndUser

    bad = event(feature="search", user_id="u1", account_id="acme") | {field: f"acme{char}-1"}
    response = post(key_client, BATCH, [event(feature="search", user_id="u2", account_id="globex"), bad])
    body = response.json()
    assert response.status_code == 200 and body["accepted"] == 1 and stored(org) == 1
    (error,) = body["errors"]
    assert (error["index"], error["field"]) == (1, field) and f"U+{ord(char):04X}" in error["message"]
    assert set(EndUser.objects.filter(organization=org).values_list("external_id", flat=True)) == {"u2"}
    assert set(Account.objects.filter(organization=org).values_list("external_id", flat=True)) == {"globex"}
    # Whitespace around an id is still trimmed, not refused.
    assert post(key_client, TRACK, event(feature="search", user_id=" u3\n")).status_code == 201
    assert EndUser.objects.filter(organization=org, external_id="u3").exists()


def test_surrounding_whitespace_is_still_stripped(key_client, org):
    assert post(key_client, TRACK, event(feature="search\n")).status_code == 201
    assert Feature.objects.get(organization=org).name == "search"


def test_admin_refuses_hidden_characters_in_key_and_name(client, org):
    staff = User.objects.create_superuser(email="staff-text@usage-platform.example", password=PASSWORD)
    client.force_login(staff)
    form = {"organization": org.pk, "key": "export-pdf", "name": "Export\u200bPDF", "description": ""}
    response = client.post("/admin/telemetry/feature/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "U+200B" in response.content.decode()
    assert not Feature.objects.filter(organization=org).exists()

    feature = Feature.objects.create(organization=org, key="export-pdf", name="Export PDF")
    form["name"] = "Export \u202eFDP"
    response = client.post(f"/admin/telemetry/feature/{feature.pk}/change/", form)
    assert response.status_code == 200 and "U+202E" in response.content.decode()
    feature.refresh_from_db()
    assert feature.name == "Export PDF"

    form["name"] = "Export PDF (new)"
    assert client.post(f"/admin/telemetry/feature/{feature.pk}/change/", form).status_code == 302
    feature.refresh_from_db()
    assert feature.name == "Export PDF (new)"
