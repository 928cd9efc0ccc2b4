"""Fixtures every app's tests share: an organisation with an admin, an analyst, a member and
an ingestion key, a second organisation to prove isolation, and API clients for each."""

import itertools
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from rest_framework.test import APIClient

from core.db_routing import replica_state_reset
from core.redis_backoff import redis_backoff_reset
from telemetry.services import durability, storage
from tenants import services as tenant_services
from tenants.models import Role, User

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REDIS_TEST_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")
PASSWORD = "Correct-Horse-42"
_counter = itertools.count()


# Tests read today's UTC day more than once (writing events, rolling the day up, the views'
# default ranges): one that ran across 00:00 UTC compared two days and failed (a CI run on
# 2026-12-01). A test that would start in the last minutes of a UTC day waits for the next
# one instead: at most once a run.
MIDNIGHT_MARGIN_SECONDS = 120


@pytest.fixture(autouse=True)
def _not_across_midnight():
    now = datetime.now(UTC)
    left = 86_400 - (now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6)
    if left < MIDNIGHT_MARGIN_SECONDS:
        time.sleep(left + 1)


@pytest.fixture
def one_rate_window(monkeypatch):
    """The fixed-window throttles' clock held in the middle of an hour: a test that counts N
    requests against an N-a-minute rate expects them in one window, and one that ran across a
    minute's edge started counting again and let the last through (a CI run on 2026-12-03)."""
    held = (time.time() // 3600) * 3600 + 1830.0
    # Only that module's `time` (every other function of it as it is): the process's
    # time.time stays as it is.
    monkeypatch.setattr("core.rate_limit.time", SimpleNamespace(**{**vars(time), "time": lambda: held}))
    return held


@pytest.fixture(autouse=True)
def _isolated_settings(settings, tmp_path):
    """Every test gets a fresh local-memory cache (throttles, dashboard caches) and runs
    Celery tasks eagerly unless it asks for a real broker."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"test-{next(_counter)}",
        }
    }
    settings.REDIS_URL = ""
    settings.INGEST_MODE = "direct"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.GEMINI_API_KEY = ""
    settings.PASSWORD_HASHERS = ["core.test_hashers.FastArgon2PasswordHasher"]
    # The test database exists only on the primary, and a transaction-wrapped test's rows are
    # invisible to a second connection: reads stay on the primary (the "replica" alias is a
    # mirror of it), except in the tests that turn routing on (core.db_routing's tests).
    settings.DATABASE_READ_REPLICA = False
    replica_state_reset()
    from usage_platform.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    # Process-local caches of the ingestion hot path: ids are reused after a rolled-back
    # test (SQLite), so nothing cached may outlive its test.
    tenant_services.api_key_cache.clear()
    storage.feature_cache.clear()
    storage.end_user_cache.clear()
    # A Redis a test stopped leaves its URL resting; the next server may get the same port.
    redis_backoff_reset()
    durability.reset()
    yield
    tenant_services.api_key_cache.clear()
    storage.feature_cache.clear()
    storage.end_user_cache.clear()
    durability.reset()


def make_org(name="Acme"):
    """An organisation with an admin; returns the admin user (its organisation is on it)."""
    n = next(_counter)
    return tenant_services.organization_register(
        email=f"admin{n}@{name.lower().replace(' ', '')}.example", password=PASSWORD, organization_name=name
    )


def make_member(org, role, email=None):
    n = next(_counter)
    return User.objects.create_user(
        email=email or f"{role}{n}@{org.slug}.example", password=PASSWORD, organization=org, role=role
    )


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_services.auth_tokens_issue(user=user)['access_token']}")
    return client


@pytest.fixture
def admin_user(db):
    return make_org("Acme")


@pytest.fixture
def org(admin_user):
    return admin_user.organization


@pytest.fixture
def analyst_user(org):
    return make_member(org, Role.ANALYST)


@pytest.fixture
def member_user(org):
    return make_member(org, Role.MEMBER)


@pytest.fixture
def other_admin(db):
    return make_org("Globex")


@pytest.fixture
def other_org(other_admin):
    return other_admin.organization


@pytest.fixture
def api_key_pair(org, admin_user):
    """(ApiKey row, raw key string)."""
    return tenant_services.api_key_create(org=org, name="test key", created_by=admin_user)


@pytest.fixture
def raw_api_key(api_key_pair):
    return api_key_pair[1]


@pytest.fixture
def anon_client():
    return APIClient()


@pytest.fixture
def admin_client(admin_user):
    return client_for(admin_user)


@pytest.fixture
def analyst_client(analyst_user):
    return client_for(analyst_user)


@pytest.fixture
def member_client(member_user):
    return client_for(member_user)


@pytest.fixture
def other_client(other_admin):
    return client_for(other_admin)


@pytest.fixture
def key_client(raw_api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_api_key}")
    return client


@pytest.fixture
def redis_url():
    """A real Redis database for this test, flushed before and after; skips nothing: a
    missing Redis is a failure, because CI provides one."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.ping()
    client.flushdb()
    yield REDIS_TEST_URL
    client.flushdb()


# --- Browser (pytest-playwright) --------------------------------------------------------

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": "/usr/bin/chromium", "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args():
    return {"viewport": {"width": 1366, "height": 768}}


# Playwright's sync API runs an event loop in the test thread; Django's async-safety guard
# would then refuse the ORM calls that set up test data.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# --- Live server on SQLite: a database file of its own per test ---------------------------
# The SQLite test database is in shared-cache memory, fast for the 2,000-odd tests that use one
# connection. A live-server test has several: the test thread polling for what the server
# stored and each request thread of the server. Shared-cache connections lock tables, not the
# database, and a write that meets another connection's lock fails at once with "database
# table is locked" (busy_timeout does not apply): the ingestion endpoints answered 503 and a
# sendBeacon's events were lost. So each live-server test runs on a file copy of the test
# database, with the settings' WAL journal, IMMEDIATE transactions and 20 s busy timeout
# (usage_platform/settings/database.py): readers never wait, writers queue as in production.


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's `live_server`, except that its request threads never borrow the test
    thread's connection (pytest-django hands them an in-memory SQLite one): each opens its own,
    to the database `_live_server_database` points the settings at, as on PostgreSQL."""
    from pytest_django.live_server_helper import LiveServer

    addr = request.config.getvalue("liveserver") or os.environ.get("DJANGO_LIVE_TEST_SERVER_ADDRESS") or "localhost"
    server = LiveServer(addr, start=False)
    server.thread.connections_override = {}
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _memory_test_database(django_db_setup):
    """The in-memory SQLite test database's name (None on PostgreSQL), kept alive until the run
    ends by a connection of its own: such a database goes with its last connection, and
    `_live_server_database` closes the test thread's while a test runs on a file."""
    from django.db import connection

    name = connection.settings_dict["NAME"]
    if connection.vendor != "sqlite" or not connection.creation.is_in_memory_db(name):
        yield None
        return
    keeper = sqlite3.connect(name, uri=True)
    yield name
    keeper.close()


def _point_databases_at(aliases, name):
    """Every thread's next connection of `aliases` opens `name`; the test thread's open ones
    are closed (before the change: one to a file; after: one to memory, which SQLite's backend
    would not close while its name is the in-memory one)."""
    from django.db import connections

    for alias in aliases:
        connections[alias].close()
        connections[alias].settings_dict["NAME"] = name
        connections[alias].close()


@pytest.fixture(autouse=True)
def _live_server_database(request, tmp_path):
    """A test using `live_server` on SQLite runs on a file copy of the in-memory test database
    (taken with SQLite's backup API when the test starts, deleted when it ends); the aliases that
    name the in-memory database (the default and its test mirror, "replica") point at the copy
    for the test's duration. The order against pytest-django's database fixture does not
    matter: whichever database its flush at teardown meets is pristine or thrown away."""
    if "live_server" not in request.fixturenames:
        yield
        return
    name = request.getfixturevalue("_memory_test_database")
    if name is None:
        yield
        return
    from django.db import connections

    aliases = [alias for alias in connections if connections[alias].settings_dict["NAME"] == name]
    path = tmp_path / "live-server.sqlite3"
    with request.getfixturevalue("django_db_blocker").unblock():
        # Read through the test thread's own connection, which sees its own writes: another
        # connection to the shared cache would wait, forever, on a transaction it holds open.
        source = connections["default"]
        source.ensure_connection()
        copy = sqlite3.connect(path)
        source.connection.backup(copy)
        copy.close()
    _point_databases_at(aliases, str(path))
    try:
        yield
    finally:
        _point_databases_at(aliases, name)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.fixture
def browser_page(page, live_server):
    """A Playwright page that fails the test on any console error or failed request.

    Use `browser_login(page, live_server, user)` to sign in through the real login form."""
    problems = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(f"console: {msg.text}"))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    # ERR_ABORTED is the browser cancelling a load because the page navigated away (a
    # favicon still in flight when the login form redirects): not a failure of the site.
    page.on(
        "requestfailed",
        lambda req: req.failure != "net::ERR_ABORTED" and problems.append(f"request failed: {req.url} {req.failure}"),
    )
    page.on(
        "response",
        lambda resp: resp.status >= 500 and problems.append(f"server error {resp.status}: {resp.url}"),
    )
    page.set_default_timeout(10_000)
    yield page
    assert not problems, "browser reported problems:\n" + "\n".join(problems)


def wait_until(page, expression, timeout=10_000):
    """`page.wait_for_function` that works under the site's Content-Security-Policy.

    Playwright runs wait_for_function's predicate with `new Function` inside the page, which a
    policy without 'unsafe-eval' blocks; `page.evaluate` goes through DevTools and is not
    subject to it. Polls `expression` (an expression or a function source) every 50 ms."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout / 1000
    while True:
        try:
            if page.evaluate(expression):
                return
        except Error as exc:  # a navigation replaced the page between two polls
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} ms waiting for: {expression}")
        page.wait_for_timeout(50)


def browser_login(page, live_server, user, password=PASSWORD):
    """Sign in through the login page (form fields `username` = e-mail, `password`)."""
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def screenshot_dir() -> str:
    """var/screenshots/ (ignored by git), so a test run never dirties the tree; with
    UPDATE_SCREENSHOTS=1, docs/screenshots/, the committed copies the README shows."""
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        return os.path.join(here, "docs", "screenshots")
    return os.path.join(here, "var", "screenshots")


def screenshot(page, name):
    """Save a full-page 1366-wide screenshot as `name`.png in `screenshot_dir()`."""
    folder = screenshot_dir()
    os.makedirs(folder, exist_ok=True)
    page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)
