"""The test run's network guard (usage_platform/pytest_plugin.py): a connect beyond loopback or
a DNS lookup of a name is refused at once and recorded for the guard's teardown check;
loopback, IP literals and Unix sockets work."""

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from usage_platform.pytest_plugin import NetworkBlocked, blocked_connections

PUBLIC = "93.184.216.34"


def take_blocked() -> list[str]:
    """What the guard recorded, cleared so this test's own teardown check passes."""
    seen = list(blocked_connections)
    blocked_connections.clear()
    return seen


@pytest.mark.parametrize("address", [(PUBLIC, 443), ("2606:4700:4700::1111", 443), ("::ffff:93.184.216.34", 80)])
def test_a_public_address_is_refused_without_trying(address):
    family = socket.AF_INET if "." in address[0] and ":" not in address[0] else socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        started = time.monotonic()
        with pytest.raises(NetworkBlocked, match="tests must not reach the network"):
            sock.connect(address)
        assert time.monotonic() - started < 0.5
    assert take_blocked() == [f"{address[0]}:{address[1]}"]


def test_connect_ex_and_names_other_than_localhost_are_refused():
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect_ex((PUBLIC, 80))
    with socket.socket() as sock, pytest.raises(NetworkBlocked):
        sock.connect(("example.com", 80))  # connect() would resolve the name itself, in C
    assert take_blocked() == [f"{PUBLIC}:80", "example.com:80"]


def test_an_http_client_gets_a_connection_error_and_the_attempt_is_recorded():
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(f"http://{PUBLIC}/", timeout=5)
    assert isinstance(caught.value.reason, NetworkBlocked)
    assert take_blocked() == [f"{PUBLIC}:80"]


def test_an_attempt_from_another_thread_is_recorded_too():
    def attempt():
        with socket.socket() as sock, pytest.raises(NetworkBlocked):
            sock.connect((PUBLIC, 443))

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert take_blocked() == [f"{PUBLIC}:443"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "127.0.0.2"])
def test_loopback_connections_work(host):
    with socket.socket() as server:
        server.bind(("127.0.0.1" if host != "127.0.0.2" else host, 0))
        server.listen()
        with socket.create_connection((host, server.getsockname()[1]), timeout=5):
            pass
    assert blocked_connections == []


def test_unix_sockets_work(tmp_path):
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
    assert blocked_connections == []


def test_dns_lookups_of_names_are_refused_but_localhost_and_literals_resolve():
    with pytest.raises(socket.gaierror, match="tests must not reach the network"):
        socket.getaddrinfo("example.com", 443)
    assert take_blocked() == ["DNS lookup of example.com"]
    assert socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    assert socket.getaddrinfo(PUBLIC, 80, type=socket.SOCK_STREAM)[0][4] == (PUBLIC, 80)
    assert blocked_connections == []


def test_invalid_names_fail_at_once_as_rfc_6761_asks():
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("no-such-host.invalid", 443)
    assert blocked_connections == []
