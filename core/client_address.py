"""The address of the client behind a request, for per-address rate limits.

`X-Forwarded-For` is written by whoever sends the request, so it is believed only when the
direct peer (REMOTE_ADDR) is one of TRUSTED_PROXIES: then the chain is read from the right
(each trusted proxy appends the address it received the request from) and the first
address that is not a trusted proxy is the client. Anything left of it was written by the
client and is ignored. Without trusted proxies the header is ignored altogether.
"""

import functools
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def trusted_proxies_parse(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES (IPs or CIDRs) as networks; ValueError names a malformed entry."""
    return _networks(tuple(entries))


def _address(text: str) -> IPAddress | None:
    """An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    `[2001:db8::1]:443`; IPv4-mapped IPv6 as IPv4. None when it is not an address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(request: HttpRequest | None) -> str:
    """The client's IP address as text ("" when the request carries none)."""
    if request is None:
        return ""
    peer = _address(request.META.get("REMOTE_ADDR") or "")
    if peer is None:
        return ""
    networks = trusted_proxies_parse(settings.TRUSTED_PROXIES)
    if not networks or not _trusted(peer, networks):
        return str(peer)
    nearest = peer
    for hop in reversed((request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",")):
        address = _address(hop)
        if address is None:
            # A trusted proxy writes addresses; garbage was written by someone else, so the
            # client is the last hop we can vouch for (clients sending it share one limit).
            return str(nearest)
        if not _trusted(address, networks):
            return str(address)
        nearest = address
    # Every hop is a trusted proxy: the request started inside our own network.
    return str(nearest)


def address_bucket(address: str) -> str:
    """What a per-address limit counts: the address, or for IPv6 its /64, since one host
    usually holds a whole /64 and could otherwise rotate through 2⁶⁴ addresses."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address
