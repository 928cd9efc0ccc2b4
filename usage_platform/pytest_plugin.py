"""Loaded by pytest before pytest-django reads the settings (`-p usage_platform.pytest_plugin`
in pyproject.toml's addopts), so `pytest` works from a clean environment: settings refuse to
start without SECRET_KEY when DEBUG is off, and conftest.py is imported too late to help.

Each run gets its own random key, inherited by the worker and consumer processes the tests
start. A SECRET_KEY already in the environment wins.

It also keeps the tests off the network: from the moment pytest loads this plugin, a socket
of this process that connects anywhere but a loopback address (127.0.0.0/8, ::1, "localhost")
or a Unix socket raises `NetworkBlocked` at once, and so does a DNS lookup (`getaddrinfo`) of
any name but localhost (IP literals need no lookup; names under `.invalid` get the immediate
"no such name" RFC 6761 asks resolvers for). The test during which it happened fails at
teardown naming the address, even when the code under test caught the error (a webhook
delivery records a failed attempt, for one). Tests reach the outside world through a stub
server on localhost (insights/tests/helpers.py) or a stubbed resolver
(insights/tests/test_webhook_ssrf.py). Processes the tests start (gunicorn, Celery,
redis-server) are not covered: they only get loopback URLs."""

import ipaddress
import os
import secrets
import socket
import threading

import pytest

os.environ.setdefault("SECRET_KEY", "test-" + secrets.token_urlsafe(48))

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class NetworkBlocked(ConnectionRefusedError):
    """A test tried to connect beyond this machine. An OSError, so the code under test cleans
    up as it would after a refused connection; the guard fails the test all the same."""


blocked_connections: list[str] = []
_blocked_lock = threading.Lock()


def _is_loopback(host) -> bool:
    host = str(host).strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # any other name: resolving it would already leave the machine
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def _is_literal(host) -> bool:
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def _record(what: str) -> None:
    with _blocked_lock:
        blocked_connections.append(what)


def _refuse_outside(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or _is_loopback(address[0]):
        return
    _record(f"{address[0]}:{address[1]}")
    raise NetworkBlocked(f"tests must not reach the network: connect to {address[0]}:{address[1]} refused")


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, port, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name is None or _is_loopback(name) or _is_literal(name):
        return _real_getaddrinfo(host, port, *args, **kwargs)
    if str(name).lower().rstrip(".").endswith(".invalid"):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    _record(f"DNS lookup of {name}")
    raise socket.gaierror(socket.EAI_NONAME, f"tests must not reach the network: DNS lookup of {name} refused")


def _guarded_connect(self, address):
    _refuse_outside(self, address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _refuse_outside(self, address)
    return _real_connect_ex(self, address)


# socket.socket is the Python class every socket of the standard library and of the clients
# (urllib3, redis-py, psycopg's Python side, asyncio, ssl.SSLSocket through super()) is or
# derives from; C code that opens its own sockets (libpq) only ever gets loopback URLs here.
socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _no_network():
    """Fails the test if anything in this process tried to connect off the machine while it
    ran (from another thread too: a live server, a delivery thread)."""
    with _blocked_lock:
        blocked_connections.clear()
    yield
    with _blocked_lock:
        attempts, blocked_connections[:] = list(blocked_connections), []
    if attempts:
        pytest.fail(f"the test tried to reach the network (refused): {', '.join(attempts)}", pytrace=False)
