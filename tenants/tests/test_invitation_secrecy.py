"""Invitation links stay out of the server logs: the default e-mail backend writes messages to
private files (not the console), SMTP is configured with EMAIL_URL, and the access log of a
real gunicorn blanks the token of `/invite/<token>/` in the request line and the Referer."""

import logging
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.testing import settings_load
from tenants.log_redaction import invitation_links_redact

ROOT = Path(__file__).resolve().parents[2]


def test_default_backend_is_the_private_file_backend(monkeypatch):
    loaded = settings_load(monkeypatch, DEBUG="false", SECRET_KEY="k" * 60)
    assert loaded.EMAIL_BACKEND == "core.mail.PrivateFileEmailBackend"
    assert loaded.EMAIL_FILE_PATH == str(ROOT / "var" / "mail")


def test_email_url_configures_smtp(monkeypatch):
    loaded = settings_load(
        monkeypatch, SECRET_KEY="k" * 60, EMAIL_URL="smtp+tls://alerts%40example.com:pw@smtp.example.com:587"
    )
    assert loaded.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend"
    assert (loaded.EMAIL_HOST, loaded.EMAIL_PORT, loaded.EMAIL_USE_TLS) == ("smtp.example.com", 587, True)
    assert (loaded.EMAIL_HOST_USER, loaded.EMAIL_HOST_PASSWORD) == ("alerts@example.com", "pw")


def test_admin_invitation_reaches_a_private_file_and_no_log(settings, tmp_path, admin_client, caplog, capfd):
    settings.EMAIL_BACKEND = "core.mail.PrivateFileEmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    caplog.set_level(logging.DEBUG)
    body = {"email": "boss@acme.example", "role": "admin"}
    response = admin_client.post("/api/v1/org/invitations", body, format="json")
    assert response.status_code == 201
    token, link = response.json()["token"], response.json()["accept_url"]
    assert token in link  # shown once, to the admin who invited

    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert token not in text
    assert "E-mail is not sent" in caplog.text  # the operator is told where mail goes

    folder = tmp_path / "mail"
    (mail,) = folder.iterdir()
    assert link in mail.read_text()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(mail.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "line,expected",
    [
        ('"GET /invite/Abc-123_x/ HTTP/1.1"', '"GET /invite/[redacted]/ HTTP/1.1"'),
        ("https://usage.example.com/invite/Abc-123_x/", "https://usage.example.com/invite/[redacted]/"),
        ('"POST /invite/tok?x=1 HTTP/1.1"', '"POST /invite/[redacted]?x=1 HTTP/1.1"'),
        ('"GET /features/ HTTP/1.1"', '"GET /features/ HTTP/1.1"'),
    ],
)
def test_redaction(line, expected):
    assert invitation_links_redact(line) == expected


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_gunicorn_access_log_blanks_the_token(tmp_path):
    """A real gunicorn with its access log on stdout serves the invitation page and an asset
    that page loads (its Referer is the link): neither log line carries the token."""
    token = "Zx9-secret-invitation-token_42"
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "",
        "CACHE_DIR": str(tmp_path / "cache"),
    }
    # The page reads the invitation (it names the organisation and the e-mail): a real one.
    setup = (
        "from datetime import timedelta\n"
        "from django.core.management import call_command\n"
        "from django.utils import timezone\n"
        "from tenants.models import Invitation, Organization\n"
        "from tenants.queries import secret_digest\n"
        "call_command('migrate', verbosity=0)\n"
        "org = Organization.objects.create(name='Acme', slug='acme')\n"
        "Invitation.objects.create(organization=org, email='new@acme.example', role='member',\n"
        f"    token_hash=secret_digest({token!r}), expires_at=timezone.now() + timedelta(days=1))\n"
    )
    subprocess.run([sys.executable, "manage.py", "shell", "-c", setup], cwd=ROOT, env=env, check=True, timeout=300)
    log = open(tmp_path / "gunicorn.log", "w+")  # noqa: SIM115 (closed below, after the process)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "usage_platform.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            "-",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                page = urllib.request.urlopen(f"{base}/invite/{token}/", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        body = page.read()
        assert page.status == 200 and b"password" in body and b"new@acme.example" in body
        asset = urllib.request.Request(f"{base}/static/css/app.css", headers={"Referer": f"{base}/invite/{token}/"})
        assert urllib.request.urlopen(asset, timeout=5).status == 200
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.seek(0)
        text = log.read()
        log.close()
    assert '"GET /invite/[redacted]/ HTTP/1.1" 200' in text, text
    assert f'"{base}/invite/[redacted]/"' in text, text  # the asset's Referer
    assert token not in text
