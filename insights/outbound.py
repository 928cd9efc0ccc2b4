"""Outbound HTTP to tenant-supplied URLs (webhooks) without server-side request forgery.

A webhook's host name is the tenant's, and so are its DNS answers: a name can answer a public
address to the check and 127.0.0.1 to the connection made a moment later (DNS rebinding). So a
delivery resolves the name once, refuses it unless every address is public, and opens the
TCP connection to one of those checked addresses itself — never through a second lookup. The
Host header, TLS SNI and the certificate check still use the name. The peer is checked again
once connected, and redirects are never followed (http.client has no redirect handling).

What "public" means is written out below instead of trusting `ipaddress.is_global`, which
calls several non-public IPv6 forms global (6to4 and IPv4-compatible addresses that embed
127.0.0.1, site-local fec0::/10, multicast) and changes between Python releases.
"""

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv4 ranges that are not reachable public unicast (IANA special-purpose registry).
_V4_REFUSED = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network", unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata services
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
)
# IPv6 forms that carry an IPv4 address: judged by the address they embed.
_V6_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_V6_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V6_6TO4 = ipaddress.IPv6Network("2002::/16")
# Everything else must be global unicast (2000::/3) outside these special-purpose blocks.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_REFUSED = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32 among them
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
# Outside 2000::/3 and refused by that rule, named here for the reader: ::/96 (unspecified,
# loopback, deprecated IPv4-compatible), ::ffff:0:0:0/96 (IPv4-translated), 64:ff9b:1::/48
# (local-use NAT64), 100::/64 (discard), fc00::/7 (unique local), fe80::/10 (link-local),
# fec0::/10 (site-local), ff00::/8 (multicast).


NOT_PUBLIC = "The URL points at a private, loopback or link-local address (or another non-public one)."


class AddressRefused(Exception):
    """The URL's host is, or resolves to, an address outside public unicast space."""


class Unresolvable(Exception):
    """The URL's host does not resolve (or is not a valid host name)."""


def _v4_public(ip: ipaddress.IPv4Address) -> bool:
    return not any(ip in net for net in _V4_REFUSED)


def address_is_public(address: str | IPAddress) -> bool:
    """True when `address` is public unicast, IPv6 forms that embed an IPv4 address included."""
    if isinstance(address, str):
        try:
            address = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
    if isinstance(address, ipaddress.IPv4Address):
        return _v4_public(address)
    if address in _V6_MAPPED:
        return _v4_public(cast(ipaddress.IPv4Address, address.ipv4_mapped))  # never None in ::ffff:0:0/96
    if address in _V6_NAT64:
        return _v4_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _V6_6TO4:
        return _v4_public(cast(ipaddress.IPv4Address, address.sixtofour))  # never None in 2002::/16
    return address in _V6_GLOBAL_UNICAST and not any(address in net for net in _V6_REFUSED)


@dataclass(frozen=True)
class Target:
    """One URL with the addresses its host resolved to (each one already checked)."""

    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, as sent in Host and SNI
    port: int
    path: str
    sockaddrs: tuple  # (family, sockaddr) pairs, in resolver order


def target_resolve(url: str, *, allow_private: bool) -> Target:
    """Parse `url`, resolve its host once and check every address it answers.

    Raises Unresolvable, or AddressRefused unless `allow_private` (development)."""
    parts = urlsplit(url)
    if parts.hostname is None:
        raise Unresolvable("The URL's host is not a valid host name.")
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise Unresolvable("The URL's host is not a valid host name.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise Unresolvable("The URL's host does not resolve.")
    sockaddrs: list[tuple[int, tuple]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # An AF_INET/AF_INET6 sockaddr starts with the address as text.
        if not allow_private and not address_is_public(str(sockaddr[0])):
            raise AddressRefused(NOT_PUBLIC)
        if (family, sockaddr) not in sockaddrs:
            sockaddrs.append((family, sockaddr))
    if not sockaddrs:
        raise Unresolvable("The URL's host does not resolve.")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return Target(scheme=parts.scheme, host=host, port=port, path=path, sockaddrs=tuple(sockaddrs))


def _connect_pinned(target: Target, timeout: float | None, *, allow_private: bool) -> socket.socket:
    """A TCP connection to one of the target's checked addresses, no name lookup involved."""
    error: OSError | None = None
    for family, sockaddr in target.sockaddrs:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
            peer = sock.getpeername()[0]
            # Checked once more on the live socket, so the rule holds at the moment of use.
            if peer != sockaddr[0] or not (allow_private or address_is_public(peer)):
                raise AddressRefused("The connection reached an address other than the one checked.")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except AddressRefused:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError("no address to connect to")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float, allow_private: bool) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._target, self._allow_private = target, allow_private

    def connect(self) -> None:
        self.sock = _connect_pinned(self._target, self.timeout, allow_private=self._allow_private)


_tls_context: ssl.SSLContext | None = None


def _default_tls_context() -> ssl.SSLContext:
    global _tls_context
    if _tls_context is None:  # loading the CA store costs ~10 ms: once per process
        _tls_context = ssl.create_default_context()
    return _tls_context


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, target: Target, timeout: float, allow_private: bool, context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context or _default_tls_context())
        self._target, self._allow_private = target, allow_private

    def connect(self) -> None:
        sock = _connect_pinned(self._target, self.timeout, allow_private=self._allow_private)
        try:
            # SNI and certificate verification against the URL's host, not the address.
            # `_context` is the one __init__ was given, kept by http.client (not in its stubs).
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        except BaseException:
            sock.close()
            raise


def http_post_pinned(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_private: bool,
    context: ssl.SSLContext | None = None,
) -> int:
    """POST `body` to the resolved target over a connection pinned to its checked addresses;
    returns the status code (a 3xx is returned as such, never followed). Raises OSError
    (timeouts, refused connections, TLS failures), http.client.HTTPException or
    AddressRefused."""
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _PinnedHTTPSConnection(target, timeout, allow_private, context)
    else:
        conn = _PinnedHTTPConnection(target, timeout, allow_private)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        # A receiver's answer is not read beyond a small bound: nothing uses it.
        response.read(64 * 1024)
        return response.status
    finally:
        conn.close()
