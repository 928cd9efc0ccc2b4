"""Security settings: no SECRET_KEY default when DEBUG is off (and no published key accepted),
a token forged with the old default key refused, `check --deploy` clean with the production
block of .env.example, and the security headers on responses."""

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from django.core.exceptions import ImproperlyConfigured

from core.testing import settings_load

ROOT = Path(__file__).resolve().parents[2]
OLD_DEFAULT_KEY = "dev-insecure-change-me-in-production-0123456789abcdef"


def test_no_secret_key_with_debug_off_refuses_to_start(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set and DEBUG is off"):
        settings_load(monkeypatch, DEBUG="false")


@pytest.mark.parametrize("key", [OLD_DEFAULT_KEY, "change-me-to-a-long-random-string", "django-insecure-" + "x" * 50])
def test_published_keys_are_refused(monkeypatch, key):
    with pytest.raises(ImproperlyConfigured, match="published"):
        settings_load(monkeypatch, DEBUG="false", SECRET_KEY=key)
    with pytest.raises(ImproperlyConfigured, match="published"):
        settings_load(monkeypatch, DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), JWT_SIGNING_KEY=key)


def test_key_from_the_environment_or_a_file(monkeypatch, tmp_path):
    key = secrets.token_urlsafe(50)
    loaded = settings_load(monkeypatch, DEBUG="false", SECRET_KEY=key)
    assert loaded.SECRET_KEY == key and loaded.SIMPLE_JWT["SIGNING_KEY"] == key

    (tmp_path / "secret_key").write_text(key + "\n")
    loaded = settings_load(monkeypatch, DEBUG="false", SECRET_KEY_FILE=str(tmp_path / "secret_key"))
    assert loaded.SECRET_KEY == key
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY_FILE"):
        settings_load(monkeypatch, DEBUG="false", SECRET_KEY_FILE=str(tmp_path / "missing"))

    jwt_key = secrets.token_urlsafe(50)
    loaded = settings_load(monkeypatch, DEBUG="false", SECRET_KEY=key, JWT_SIGNING_KEY=jwt_key)
    assert loaded.SIMPLE_JWT["SIGNING_KEY"] == jwt_key


def test_debug_runs_without_a_key(monkeypatch):
    loaded = settings_load(monkeypatch, DEBUG="true")
    # A development-only key: `check --deploy` flags the prefix, and DEBUG off refuses it.
    assert loaded.SECRET_KEY.startswith("django-insecure-")


def test_manage_py_says_why_it_will_not_start(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DEBUG": "false", "SECRET_KEY": "", "SECRET_KEY_FILE": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set and DEBUG is off" in result.stderr


def _access_token(user, key):
    now = int(time.time())
    claims = {
        "token_type": "access",
        "exp": now + 600,
        "iat": now,
        "jti": secrets.token_hex(16),
        "user_id": str(user.pk),
        "org_id": user.organization_id,
        "role": user.role,
        "email": user.email,
    }
    return jwt.encode(claims, key, algorithm="HS256")


def test_token_forged_with_the_old_default_key_is_refused(settings, anon_client, admin_user):
    forged = _access_token(admin_user, OLD_DEFAULT_KEY)
    response = anon_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert set(response.json()) >= {"detail", "errors"}
    # The same claims signed with the configured key are a valid token: only the key differs.
    genuine = _access_token(admin_user, settings.SIMPLE_JWT["SIGNING_KEY"])
    response = anon_client.get("/api/v1/auth/me", HTTP_AUTHORIZATION=f"Bearer {genuine}")
    assert response.status_code == 200 and response.json()["role"] == "admin"


def env_example_production() -> dict[str, str]:
    """The assignments of .env.example as a production site sets them: its active lines plus the
    commented-out "Production behind HTTPS" block."""
    values, in_production_block = {}, False
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("# ---"):
            in_production_block = "Production behind HTTPS" in line
            continue
        active = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        commented = re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=(.*)", line)
        if active:
            values[active[1]] = active[2]
        elif commented and in_production_block:
            values[commented[1]] = commented[2]
    return values


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    production = env_example_production()
    assert production["SECURE_SSL_REDIRECT"] == "true" and production["DEBUG"] == "false"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **production}
    env["SECRET_KEY"] = secrets.token_urlsafe(50)  # .env.example leaves it for each site to make
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_security_headers_on_pages_and_api(client, settings):
    for path in ("/login/", "/api/v1/auth/me", "/health", "/no-such-page/"):
        response = client.get(path)
        assert response["Content-Security-Policy"].startswith("default-src 'self'; script-src 'self'"), path
        assert "'unsafe-inline'" not in response["Content-Security-Policy"]
        assert "camera=()" in response["Permissions-Policy"] and "geolocation=()" in response["Permissions-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
    docs = client.get("/api/docs/")
    assert "img-src 'self' data:" in docs["Content-Security-Policy"]
    assert b"<style" not in docs.content and b"<script>" not in docs.content


def test_https_redirect_spares_health_probes(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    assert client.get("/health").status_code == 200
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/login/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
