"""Login brute force: failures are limited per account and per client address on every login
path (the API, the pages' form, the Django admin), X-Forwarded-For counts only behind a
trusted proxy, the right password is refused while throttled and accepted once the window
has passed, and an attacker elsewhere cannot lock an owner out of their usual address.

The throttles' clock is pinned (`clock`): on the wall clock a test whose attempts straddle a
window boundary sees its count slide away, and one that waits for a window sleeps."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from conftest import PASSWORD
from core import rate_limit
from tenants import login_throttle
from tenants.models import User

pytestmark = pytest.mark.django_db

LOGIN = "/api/v1/auth/login"
PAGE_LOGIN = "/login/"
ADMIN_LOGIN = "/admin/login/"


class FrozenClock:
    """Stands in for the `time` module where the throttles read the time (`time.time()` in
    tenants.login_throttle and core.rate_limit); moves only when a test advances it."""

    # A quarter of a second past a boundary of every window used here (1 s, 1, 5 and 15
    # minutes), as any real instant lies somewhere inside its windows.
    START = 1_800_000_000.25

    def __init__(self):
        self.now = self.START

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    frozen = FrozenClock()
    monkeypatch.setattr(login_throttle, "time", frozen)
    monkeypatch.setattr(rate_limit, "time", frozen)
    return frozen


@pytest.fixture(autouse=True)
def small_limits(settings):
    settings.LOGIN_ACCOUNT_FAILURES = 3
    settings.LOGIN_ADDRESS_FAILURES = 5
    # The per-request `auth` rate is not what these tests are about.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "1000/min"}}


def api_login(email, password, *, peer="198.51.100.1", forwarded=None):
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return APIClient().post(LOGIN, {"username": email, "password": password}, format="json", **headers)


def page_login(email, password, *, path=PAGE_LOGIN, peer="198.51.100.1"):
    return Client(REMOTE_ADDR=peer).post(path, {"username": email, "password": password})


def assert_throttled(response):
    assert response.status_code == 429, response.content
    body = response.json()
    assert set(body) == {"detail", "errors"} and body["errors"] == {}
    assert body["detail"].startswith("Too many failed log-in attempts. Try again in ")
    assert 1 <= int(response["Retry-After"]) <= 15 * 60 * 2
    return body


# --- the API -------------------------------------------------------------------------------


def test_rotating_forwarded_for_from_an_untrusted_peer_is_one_address(analyst_user):
    # Different accounts, a new X-Forwarded-For each time: all one client, REMOTE_ADDR.
    statuses = [
        api_login(f"guess{n}@victim.example", "wrong", forwarded=f"203.0.113.{n}").status_code for n in range(5)
    ]
    assert statuses == [401] * 5
    assert_throttled(api_login("guess9@victim.example", "wrong", forwarded="203.0.113.99"))
    # The address limit holds for every account from that peer, right password included …
    assert_throttled(api_login(analyst_user.email, PASSWORD, forwarded="192.0.2.1"))
    # … and for no other peer.
    assert api_login(analyst_user.email, PASSWORD, peer="198.51.100.2").status_code == 200


def test_a_trusted_proxy_is_believed_and_only_its_hop(settings, analyst_user):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = "10.1.2.3"
    for n in range(5):
        # The client makes up the left part; the proxy appends the address it saw.
        response = api_login(f"guess{n}@victim.example", "wrong", peer=proxy, forwarded=f"192.0.2.{n}, 203.0.113.7")
        assert response.status_code == 401
    assert_throttled(api_login(analyst_user.email, PASSWORD, peer=proxy, forwarded="203.0.113.7"))
    # Another client behind the same proxy is not affected.
    assert api_login(analyst_user.email, PASSWORD, peer=proxy, forwarded="203.0.113.8").status_code == 200


def test_the_account_limit_holds_across_addresses(analyst_user):
    for n in range(3):
        assert api_login(analyst_user.email, "wrong", peer=f"198.51.100.{10 + n}").status_code == 401
    # A fresh address, the right password: still refused, and the password is not checked.
    body = assert_throttled(api_login(analyst_user.email, PASSWORD, peer="198.51.100.50"))
    assert "minutes" in body["detail"]
    # Unknown e-mails are throttled alike: the answer never tells whether an account exists.
    for n in range(3):
        api_login("nobody@nowhere.example", "wrong", peer=f"198.51.100.{20 + n}")
    assert_throttled(api_login("nobody@nowhere.example", "wrong", peer="198.51.100.51"))
    # E-mails are compared as the login compares them.
    assert_throttled(api_login(f"  {analyst_user.email.upper()} ", PASSWORD, peer="198.51.100.52"))


def test_the_right_password_is_accepted_once_the_window_has_passed(settings, clock, analyst_user):
    settings.LOGIN_ACCOUNT_WINDOW_SECONDS = 1
    for _ in range(3):
        assert api_login(analyst_user.email, "wrong").status_code == 401
    throttled = api_login(analyst_user.email, PASSWORD)
    assert_throttled(throttled)
    retry_after = int(throttled["Retry-After"])
    assert retry_after <= 2
    clock.advance(retry_after)
    response = api_login(analyst_user.email, PASSWORD)
    assert response.status_code == 200, response.content


def test_an_owner_logs_in_from_a_known_address_while_attacked_elsewhere(analyst_user):
    home = "198.51.100.7"
    assert api_login(analyst_user.email, PASSWORD, peer=home).status_code == 200
    for n in range(3):
        api_login(analyst_user.email, "wrong", peer=f"203.0.113.{n}")
    assert_throttled(api_login(analyst_user.email, PASSWORD, peer="203.0.113.200"))
    assert api_login(analyst_user.email, PASSWORD, peer=home).status_code == 200
    # From the known address the account limit still counts that address's own failures.
    for _ in range(3):
        assert api_login(analyst_user.email, "wrong", peer=home).status_code == 401
    assert_throttled(api_login(analyst_user.email, PASSWORD, peer=home))


def test_a_successful_login_clears_its_own_failures(analyst_user):
    for _ in range(2):
        api_login(analyst_user.email, "wrong")
    assert api_login(analyst_user.email, PASSWORD).status_code == 200
    for _ in range(2):
        assert api_login(analyst_user.email, "wrong").status_code == 401
    assert api_login(analyst_user.email, PASSWORD).status_code == 200


def test_the_auth_rate_is_per_trusted_address_too(settings, anon_client, one_rate_window):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "2/min"}}
    register = "/api/v1/auth/register"
    statuses = [
        anon_client.post(
            register,
            {"email": "x", "password": "y", "organization_name": "z"},
            format="json",
            REMOTE_ADDR="198.51.100.9",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{n}",
        ).status_code
        for n in range(3)
    ]
    assert statuses == [400, 400, 429]


# --- the pages' login form and the admin ------------------------------------------------------


def test_page_login_is_throttled_with_a_message_and_429(analyst_user):
    for n in range(3):
        response = page_login(analyst_user.email, "wrong", peer=f"198.51.100.{30 + n}")
        assert response.status_code == 200 and b"alert-error" in response.content
    response = page_login(analyst_user.email, PASSWORD, peer="198.51.100.60")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 1800
    assert b"Too many failed log-in attempts. Try again in" in response.content
    assert b'name="username"' in response.content  # the form again, not an error page
    assert "_auth_user_id" not in response.client.session


def test_admin_login_is_throttled_with_a_message_and_429(db):
    staff = User.objects.create_superuser(email="staff@platform.example", password=PASSWORD)
    for n in range(3):
        assert page_login(staff.email, "wrong", path=ADMIN_LOGIN, peer=f"198.51.100.{40 + n}").status_code == 200
    response = page_login(staff.email, PASSWORD, path=ADMIN_LOGIN, peer="198.51.100.61")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert b"Too many failed log-in attempts. Try again in" in response.content
    # An untouched account still signs in to the admin.
    other = User.objects.create_superuser(email="other-staff@platform.example", password=PASSWORD)
    assert page_login(other.email, PASSWORD, path=ADMIN_LOGIN, peer="198.51.100.62").status_code == 302


def test_the_paths_share_one_count(analyst_user):
    assert api_login(analyst_user.email, "wrong", peer="198.51.100.70").status_code == 401
    assert page_login(analyst_user.email, "wrong", peer="198.51.100.71").status_code == 200
    assert page_login(analyst_user.email, "wrong", path=ADMIN_LOGIN, peer="198.51.100.72").status_code == 200
    assert_throttled(api_login(analyst_user.email, PASSWORD, peer="198.51.100.73"))
    assert page_login(analyst_user.email, PASSWORD, peer="198.51.100.74").status_code == 429


def test_page_address_limit_with_rotating_accounts(analyst_user):
    for n in range(5):
        assert page_login(f"guess{n}@victim.example", "wrong").status_code == 200
    assert page_login(analyst_user.email, PASSWORD).status_code == 429


@pytest.mark.redis
def test_counts_live_in_redis_with_an_expiry(settings, redis_url, analyst_user):
    import redis

    settings.CACHES = {"default": {"BACKEND": "core.cache.RedisCache", "LOCATION": redis_url}}
    for _ in range(3):
        assert api_login(analyst_user.email, "wrong").status_code == 401
    assert_throttled(api_login(analyst_user.email, PASSWORD))
    client = redis.Redis.from_url(redis_url)
    keys = client.keys("*login:*")
    assert keys and not [k for k in keys if analyst_user.email.encode() in k]  # no e-mails in keys
    assert all(0 < client.ttl(k) <= 2 * 15 * 60 + 1 for k in keys)
