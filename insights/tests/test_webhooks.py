"""Webhooks: URL safety, CRUD API with roles and tenancy, the signature recipe, and real
deliveries to a receiving server on localhost with retries after 500s."""

import hashlib
import hmac
import json
import time

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from core.testing import deleted_before_update
from insights import webhooks
from insights.models import Webhook, WebhookDelivery
from insights.tests.helpers import StubServer

URL = "/api/v1/org/webhooks"
PUBLIC_URL = "https://93.184.216.34/hooks/usage"  # a literal public address: no DNS needed


def verify_like_the_readme(secret, body: bytes, headers) -> bool:
    """The receiver recipe exactly as documented in the README (independent of the code)."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers["X-Signature"]):
        return False
    sent = json.loads(body)["timestamp"]
    return str(sent) == headers["X-Timestamp"] and abs(time.time() - sent) <= 300


# --- URL safety ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://172.16.5.4/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://user:pw@93.184.216.34/hook",
        "https://no-such-host.invalid/hook",
        "",
        # An unclosed bracket makes urlsplit raise: it was a 500.
        "http://[::1/hook",
    ],
)
def test_unsafe_url_is_refused_with_400(admin_client, url):
    response = admin_client.post(URL, {"url": url, "events": ["anomaly.created"]}, format="json")
    assert response.status_code == 400, response.content
    assert "url" in response.json()["errors"]
    assert not Webhook.objects.exists()


def test_private_url_allowed_by_setting(settings, admin_client):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    response = admin_client.post(URL, {"url": "http://127.0.0.1:8501/h", "events": ["export.daily"]}, format="json")
    assert response.status_code == 201
    # …but never a non-http scheme.
    response = admin_client.post(URL, {"url": "gopher://127.0.0.1/", "events": ["export.daily"]}, format="json")
    assert response.status_code == 400


def test_patch_to_unsafe_url_is_refused(admin_client, org):
    webhook = webhooks.webhook_create(org, url=PUBLIC_URL, events=["anomaly.created"])
    response = admin_client.patch(f"{URL}/{webhook.id}", {"url": "http://10.0.0.1/"}, format="json")
    assert response.status_code == 400
    webhook.refresh_from_db()
    assert webhook.url == PUBLIC_URL


# --- CRUD, roles, tenancy --------------------------------------------------------------------


def test_crud_secret_shown_once(admin_client):
    response = admin_client.post(URL, {"url": PUBLIC_URL, "events": ["anomaly.created", "export.daily"]}, format="json")
    assert response.status_code == 201
    created = response.json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == ["anomaly.created", "export.daily"] and created["active"] is True

    listing = admin_client.get(URL).json()
    assert listing["count"] == 1 and "secret" not in listing["results"][0]
    detail = admin_client.get(f"{URL}/{created['id']}").json()
    assert "secret" not in detail

    patched = admin_client.patch(f"{URL}/{created['id']}", {"active": False, "events": ["export.daily"]}, format="json")
    assert patched.status_code == 200
    assert patched.json()["active"] is False and patched.json()["events"] == ["export.daily"]
    assert "secret" not in patched.json()

    assert admin_client.get(f"{URL}/{created['id']}/deliveries").json()["count"] == 0
    assert admin_client.delete(f"{URL}/{created['id']}").status_code == 204
    assert admin_client.get(f"{URL}/{created['id']}").status_code == 404


@pytest.mark.parametrize(
    "body,field",
    [
        ({"url": PUBLIC_URL, "events": []}, "events"),
        ({"url": PUBLIC_URL, "events": ["user.deleted"]}, "events"),
        ({"url": PUBLIC_URL}, "events"),
        ({"events": ["export.daily"]}, "url"),
        ({"url": PUBLIC_URL, "events": "anomaly.created"}, "events"),
    ],
)
def test_bad_bodies_are_400(admin_client, body, field):
    response = admin_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert any(key.split(".")[0] == field for key in response.json()["errors"])


def test_roles(analyst_client, member_client, anon_client, org):
    webhook = webhooks.webhook_create(org, url=PUBLIC_URL, events=["anomaly.created"])
    for client in (analyst_client, member_client):
        assert client.get(URL).status_code == 403
        assert client.post(URL, {"url": PUBLIC_URL, "events": ["export.daily"]}, format="json").status_code == 403
        assert client.patch(f"{URL}/{webhook.id}", {"active": False}, format="json").status_code == 403
        assert client.delete(f"{URL}/{webhook.id}").status_code == 403
        assert client.get(f"{URL}/{webhook.id}/deliveries").status_code == 403
    assert anon_client.get(URL).status_code == 401


def test_other_organisations_webhook_is_404(other_client, admin_client, org):
    webhook = webhooks.webhook_create(org, url=PUBLIC_URL, events=["anomaly.created"])
    assert other_client.get(f"{URL}/{webhook.id}").status_code == 404
    assert other_client.patch(f"{URL}/{webhook.id}", {"active": False}, format="json").status_code == 404
    assert other_client.delete(f"{URL}/{webhook.id}").status_code == 404
    assert other_client.get(f"{URL}/{webhook.id}/deliveries").status_code == 404
    assert other_client.get(URL).json()["count"] == 0
    assert Webhook.objects.filter(pk=webhook.id, active=True).exists()


def test_list_query_count(admin_client, org, django_assert_max_num_queries):
    for i in range(5):
        webhooks.webhook_create(org, url=f"{PUBLIC_URL}/{i}", events=["anomaly.created"])
    # auth user + count + page
    with django_assert_max_num_queries(4):
        response = admin_client.get(URL)
    assert response.json()["count"] == 5


# --- Signature and deliveries -------------------------------------------------------------------


def test_signature_verifiable_with_documented_recipe(org):
    webhook = webhooks.webhook_create(org, url=PUBLIC_URL, events=["anomaly.created"])
    body, headers = webhooks.request_build(webhook, "anomaly.created", {"anomalies": [1]}, delivery_id="d1")
    assert headers["X-Signature"].startswith("sha256=")
    assert verify_like_the_readme(webhook.secret, body, headers)
    assert webhooks.signature_verify(webhook.secret, body, headers["X-Signature"], headers["X-Timestamp"])
    # Any change to the body, or another secret, breaks it.
    tampered = body.replace(b'"anomalies":[1]', b'"anomalies":[2]')
    assert not verify_like_the_readme(webhook.secret, tampered, headers)
    assert not verify_like_the_readme("whsec_other", body, headers)
    assert json.loads(body)["event"] == "anomaly.created" and json.loads(body)["data"] == {"anomalies": [1]}


def test_receiver_gets_retried_deliveries_after_500s(settings, org, admin_client, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    with StubServer([(500, {"error": "boom"}, 0), (500, {"error": "boom"}, 0), (200, {"ok": True}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=f"{receiver.url}/hook", events=["anomaly.created"])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "anomaly.created", {"anomalies": [{"id": 1}]})
    assert len(receiver.requests) == 3
    for path, headers, body in receiver.requests:
        assert path == "/hook"
        assert verify_like_the_readme(webhook.secret, body, headers)
        assert headers["X-Event"] == "anomaly.created"
    # The same delivery id on every attempt, so a receiver can de-duplicate.
    assert len({headers["X-Delivery"] for _, headers, _ in receiver.requests}) == 1
    attempts = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("attempt"))
    assert [(d.attempt, d.status_code) for d in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert attempts[0].next_attempt_at and attempts[1].next_attempt_at > attempts[0].next_attempt_at
    assert attempts[-1].delivered_at is not None and attempts[-1].next_attempt_at is None
    assert attempts[0].error == "HTTP 500"

    listing = admin_client.get(f"{URL}/{webhook.id}/deliveries").json()
    assert listing["count"] == 3 and {r["attempt"] for r in listing["results"]} == {1, 2, 3}


def test_delivery_gives_up_after_max_attempts(settings, org, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with StubServer([(503, {}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "export.daily", {"date": "2026-01-01"})
    assert len(receiver.requests) == 3
    rows = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("attempt"))
    assert [r.status_code for r in rows] == [503, 503, 503]
    assert rows[-1].next_attempt_at is None and rows[-1].delivered_at is None


def test_client_error_is_not_retried(settings, org, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(410, {}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get(webhook=webhook).status_code == 410


def test_timeout_is_retried_and_recorded(settings, org, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.3
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    with StubServer([(200, {}, 1.0), (200, {}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
    rows = list(WebhookDelivery.objects.filter(webhook=webhook).order_by("attempt"))
    assert rows[0].status_code is None and "timed out" in rows[0].error.lower()
    assert rows[1].status_code == 200 and rows[1].delivered_at is not None


def test_delivery_rechecks_the_address(settings, org, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    webhook = webhooks.webhook_create(org, url="http://127.0.0.1:8599/never", events=["export.daily"])
    settings.WEBHOOK_ALLOW_PRIVATE = False  # e.g. the setting was turned off, or DNS moved
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
    row = WebhookDelivery.objects.get(webhook=webhook)
    assert row.error.startswith("refused") and row.next_attempt_at is None


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_delivers_nothing(settings, org):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(200, {}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=receiver.url, events=["export.daily"])
        with pytest.raises(RuntimeError), transaction.atomic():
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
            raise RuntimeError("the change that went with the event fails")
        assert receiver.requests == [] and not WebhookDelivery.objects.exists()

        with transaction.atomic():
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 2})
            assert receiver.requests == []  # not before the commit either
        assert len(receiver.requests) == 1
        assert json.loads(receiver.requests[0][2])["data"] == {"x": 2}


def test_webhook_deleted_while_being_patched_is_404(admin_client, org):
    # Seen in the schemathesis run: a PATCH racing a DELETE of the same webhook answered 500.
    webhook = Webhook.objects.create(organization=org, url="https://example.com/h", events=["export.daily"])
    with deleted_before_update(Webhook, webhook.pk):
        response = admin_client.patch(f"{URL}/{webhook.id}", {"active": False}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Webhook not found.", "errors": {}}


def _readme_webhooks_section() -> str:
    readme = (django_settings.BASE_DIR / "README.md").read_text()
    return readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]


def test_readme_verify_is_for_the_json_format_and_says_what_slack_deliveries_prove(org):
    """README's `verify()` reads the body's timestamp, which a Slack-format body has not: the
    README must say it is for the JSON format and that a Slack delivery's signature covers the
    body only (no time, so replays verify)."""
    section = _readme_webhooks_section()
    code = section.split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)  # the README's own function, as a receiver would paste it
    verify = namespace["verify"]
    hook = webhooks.webhook_create(org, url=PUBLIC_URL, events=["alert.fired"], format="slack")
    body, headers = webhooks.request_build(hook, "alert.fired", {"firings": []}, delivery_id="d1")
    with pytest.raises(KeyError):
        verify(hook.secret, body, headers["X-Signature"], headers["X-Timestamp"])
    after = " ".join(section.split("```python", 1)[1].split("```", 2)[1].split())
    assert "This `verify()` is for the JSON format only" in after
    assert "the signature covers" in after.lower() or "signature shows" in after.lower()
    assert "replayed" in after
    # What the README tells a Slack-format receiver to check holds: the HMAC over the raw body.
    expected = "sha256=" + hmac.new(hook.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, headers["X-Signature"])
