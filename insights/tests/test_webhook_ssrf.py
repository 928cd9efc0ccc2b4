"""Webhook SSRF: DNS rebinding against a real listening server, the connection pinned to the
checked address (Host header, TLS SNI and certificate check still on the name), and every
IPv6 form of private space refused when a webhook is saved and when it is delivered.

Only the resolver is stubbed (`socket.getaddrinfo`, the boundary between us and DNS); the
connections are real sockets to real servers on localhost."""

import datetime
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from insights import outbound, webhooks
from insights.models import WebhookDelivery
from insights.tests.helpers import StubServer, free_port

URL = "/api/v1/org/webhooks"
PUBLIC = "93.184.216.34"

# The IPv6 forms of private space (and a few IPv4 ones Python's ipaddress gets wrong).
PRIVATE_FORMS = [
    "2002:7f00:1::",  # 6to4 embedding 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 embedding 169.254.169.254 (cloud metadata)
    "2002:c0a8:1::",  # 6to4 embedding 192.168.0.1
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:10.0.0.1",
    "::ffff:0:7f00:1",  # IPv4-translated
    "::7f00:1",  # deprecated IPv4-compatible
    "64:ff9b::7f00:1",  # NAT64 well-known prefix embedding 127.0.0.1
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::a00:1",  # NAT64 local-use prefix
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "fc00::1",  # unique local
    "fd12:3456:789a::1",
    "fec0::1",  # site-local
    "fe80::1",  # link-local
    "ff02::1",  # multicast
    "::1",
    "::",
    "100::1",  # discard
    "2001:db8::1",  # documentation
    "100.64.0.1",  # carrier-grade NAT
    "0.0.0.0",
    "192.0.0.8",
    "198.18.0.1",
    "240.0.0.1",
    "255.255.255.255",
]
PUBLIC_FORMS = [PUBLIC, "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]


def literal_url(address):
    return f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook"


class Resolver:
    """Stands in for DNS: each lookup of a stubbed name gets the next answer of its list (the
    last repeats); an answer is an address or a tuple of addresses. Other names go to the real
    resolver. Records every lookup of a stubbed name."""

    def __init__(self, monkeypatch, answers: dict):
        self.answers = {name: list(queue) for name, queue in answers.items()}
        self.lookups: list[str] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            self.lookups.append(host)
            queue = self.answers[host]
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            infos = []
            for address in (answer,) if isinstance(answer, str) else answer:
                if ":" in address:
                    infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0)))
                else:
                    infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))))
            return infos

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def public_address_unreachable(monkeypatch) -> list:
    """Stands in for the Internet at PUBLIC (tests never leave the machine: see
    usage_platform/pytest_plugin.py): a connect there is refused, as a firewall would, and
    recorded. Connections to anything else go through."""
    attempts = []
    connect = socket.socket.connect

    def refuse_public(sock, address):
        if address[0] == PUBLIC:
            attempts.append(address[:2])
            raise ConnectionRefusedError(f"{PUBLIC} stands for the Internet in these tests")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse_public)
    return attempts


@pytest.mark.parametrize("address", PRIVATE_FORMS)
def test_private_forms_are_not_public(address):
    assert not outbound.address_is_public(address)


@pytest.mark.parametrize("address", PUBLIC_FORMS)
def test_public_forms_are_public(address):
    assert outbound.address_is_public(address)


@pytest.mark.parametrize("address", PRIVATE_FORMS)
def test_private_forms_refused_at_create(admin_client, address):
    response = admin_client.post(URL, {"url": literal_url(address), "events": ["export.daily"]}, format="json")
    assert response.status_code == 400, response.content
    assert "url" in response.json()["errors"]


def test_a_name_answering_a_private_form_is_refused_at_create(monkeypatch, admin_client):
    Resolver(monkeypatch, {"hooks.tenant.example": [PUBLIC, (PUBLIC, "2002:7f00:1::"), "fd00::1"]})
    body = {"url": "https://hooks.tenant.example/h", "events": ["export.daily"]}
    assert admin_client.post(URL, body, format="json").status_code == 201
    # One private address among public ones is enough: a connection may go to any of them.
    for _ in range(2):
        response = admin_client.post(URL, body, format="json")
        assert response.status_code == 400 and "url" in response.json()["errors"]


@pytest.mark.parametrize("address", PRIVATE_FORMS)
def test_private_forms_refused_at_delivery(settings, org, address, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    webhook = webhooks.webhook_create(org, url=literal_url(address), events=["export.daily"])
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
    row = WebhookDelivery.objects.get(webhook=webhook)
    assert row.error.startswith("refused") and row.status_code is None and row.next_attempt_at is None


def test_dns_rebinding_never_reaches_loopback(monkeypatch, settings, org, django_capture_on_commit_callbacks):
    """public, public, then 127.0.0.1: the check and the first delivery see a public address,
    the next lookup answers loopback. The signed POST must never reach the local server."""
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    internet = public_address_unreachable(monkeypatch)
    with StubServer([(200, {"ok": True}, 0)]) as receiver:
        resolver = Resolver(monkeypatch, {"rebind.example": [PUBLIC, PUBLIC, "127.0.0.1"]})
        url = f"http://rebind.example:{receiver.port}/hook"
        webhook = webhooks.webhook_create(org, url=url, events=["export.daily"])
        # The first delivery connects to the public address it checked; whatever answers
        # there (here: a refusal, see public_address_unreachable) is not our server. The second one resolves
        # again, gets loopback and refuses it without connecting.
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 2})
    assert receiver.requests == []
    first, second = WebhookDelivery.objects.filter(webhook=webhook).order_by("id")
    assert not first.error.startswith("refused")
    assert second.error.startswith("refused") and second.status_code is None
    # One lookup for the check and one per delivery: the connection itself never resolves.
    assert resolver.lookups == ["rebind.example"] * 3
    assert internet == [(PUBLIC, receiver.port)]  # the first delivery went to the checked address


def test_pinned_delivery_sends_the_original_host(monkeypatch, settings, org, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(204, b"", 0)]) as receiver:
        resolver = Resolver(monkeypatch, {"hooks.tenant.example": ["127.0.0.1"]})
        url = f"http://hooks.tenant.example:{receiver.port}/in/hook?source=usage"
        webhook = webhooks.webhook_create(org, url=url, events=["export.daily"])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
    assert len(receiver.requests) == 1
    path, headers, body = receiver.requests[0]
    assert path == "/in/hook?source=usage"
    assert headers["Host"] == f"hooks.tenant.example:{receiver.port}"
    assert headers["X-Signature"].startswith("sha256=") and b'"export.daily"' in body
    row = WebhookDelivery.objects.get(webhook=webhook)
    assert row.status_code == 204 and row.delivered_at is not None
    assert resolver.lookups == ["hooks.tenant.example"]  # with ALLOW_PRIVATE, no check at create


def test_redirect_is_not_followed(settings, org, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with StubServer([(302, {}, 0)]) as receiver:
        webhook = webhooks.webhook_create(org, url=f"{receiver.url}/hook", events=["export.daily"])
        with django_capture_on_commit_callbacks(execute=True):
            webhooks.webhook_enqueue(webhook, "export.daily", {"x": 1})
    assert len(receiver.requests) == 1
    row = WebhookDelivery.objects.get(webhook=webhook)
    assert row.status_code == 302 and row.error == "HTTP 302" and row.next_attempt_at is None


# --- https: SNI and certificate checked against the name, connection to the address ----------


def _certificate(tmp_path, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_pem.decode()


class TLSServer:
    """An HTTPS server on 127.0.0.1 presenting a certificate for `name`; records the SNI and
    Host of each request."""

    def __init__(self, tmp_path, name):
        self.ca = _certificate(tmp_path, name)
        self.seen = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.seen.append((server.sni, self.headers["Host"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
        self.sni = None

        def remember_sni(_sock, server_name, _context):
            server.sni = server_name

        context.sni_callback = remember_sni
        self.port = free_port()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_https_is_pinned_with_sni_and_certificate_of_the_name(monkeypatch, tmp_path):
    with TLSServer(tmp_path, "hooks.tenant.example") as server:
        Resolver(monkeypatch, {"hooks.tenant.example": ["127.0.0.1"]})
        target = outbound.target_resolve(f"https://hooks.tenant.example:{server.port}/h", allow_private=True)
        trusting = ssl.create_default_context(cadata=server.ca)
        status = outbound.http_post_pinned(target, b"{}", {}, timeout=5, allow_private=True, context=trusting)
    assert status == 200
    assert server.seen == [("hooks.tenant.example", f"hooks.tenant.example:{server.port}")]


def test_https_certificate_for_another_name_is_refused(monkeypatch, tmp_path):
    with TLSServer(tmp_path, "someone-else.example") as server:
        Resolver(monkeypatch, {"hooks.tenant.example": ["127.0.0.1"]})
        target = outbound.target_resolve(f"https://hooks.tenant.example:{server.port}/h", allow_private=True)
        trusting = ssl.create_default_context(cadata=server.ca)
        with pytest.raises(ssl.SSLCertVerificationError):
            outbound.http_post_pinned(target, b"{}", {}, timeout=5, allow_private=True, context=trusting)
