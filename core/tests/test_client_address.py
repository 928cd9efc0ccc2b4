"""The client address behind a request: X-Forwarded-For only from TRUSTED_PROXIES, read from
the right; the per-address limits count an IPv6 client by its /64."""

import pytest
from django.test import RequestFactory

from core.client_address import address_bucket, client_address, trusted_proxies_parse


def request(peer, forwarded=None):
    headers = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


@pytest.fixture
def proxies(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.10"]


def test_without_trusted_proxies_the_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []
    assert client_address(request("198.51.100.1", "203.0.113.9")) == "198.51.100.1"


def test_an_untrusted_peer_cannot_name_another_client(proxies):
    assert client_address(request("198.51.100.1", "10.0.0.1, 203.0.113.9")) == "198.51.100.1"


@pytest.mark.parametrize(
    "forwarded, client",
    [
        ("203.0.113.9", "203.0.113.9"),
        ("1.1.1.1, 203.0.113.9", "203.0.113.9"),  # the left part was written by the client
        ("203.0.113.9, 10.9.9.9", "203.0.113.9"),  # two trusted hops
        ("203.0.113.9,192.0.2.10", "203.0.113.9"),
        ("203.0.113.9:51234", "203.0.113.9"),  # proxies that append the port
        ("[2001:db8::7]:443", "2001:db8::7"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        ("10.1.1.1, 10.2.2.2", "10.1.1.1"),  # from inside our own network
        ("", "10.0.0.2"),  # no header: the proxy itself
        ("203.0.113.9, not-an-address", "10.0.0.2"),  # garbage where a proxy writes: trust none of it
        ("not-an-address, 203.0.113.9", "203.0.113.9"),
    ],
)
def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(proxies, forwarded, client):
    assert client_address(request("10.0.0.2", forwarded)) == client


def test_ipv6_proxies_and_clients(proxies):
    assert client_address(request("2001:db8:ffff:1::5", "2001:db8:1:2::99")) == "2001:db8:1:2::99"


def test_no_request_or_no_peer():
    assert client_address(None) == ""
    assert client_address(request("")) == ""


def test_ipv6_clients_are_counted_by_their_64():
    assert address_bucket("2001:db8:1:2:aaaa::1") == address_bucket("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert address_bucket("203.0.113.9") == "203.0.113.9"


def test_a_malformed_trusted_proxy_is_refused():
    with pytest.raises(ValueError):
        trusted_proxies_parse(["10.0.0.0/33"])
