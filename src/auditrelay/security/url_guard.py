"""Refuse destination URLs that point inside the network (SSRF guard).

An admin-supplied URL that resolves to loopback, private, link-local, shared or cloud
metadata addresses could make auditrelay a proxy into the operator's network; those are
refused unless `AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS=true`.

`check_destination_url` runs when a destination is saved, when its delivery loop starts, on
/test and on a dead-letter resend. A host name can resolve elsewhere later (DNS rebinding),
so the delivery client also applies `is_internal_address` to every address it resolves
before connecting (`delivery/http1.py`).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}

#: Why an address is refused and how to allow it, after "resolves to <address>, ".
INTERNAL_HINT = (
    "a private, loopback, link-local or metadata address; "
    "set AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS=true to allow it"
)


class UnsafeUrl(ValueError):
    """The URL is malformed or points somewhere destinations may not go."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        #: True when the host did not resolve: it may well resolve in a moment.
        self.transient = transient


def check_destination_url(url: str, allow_private: bool) -> None:
    """Raise `UnsafeUrl` with a reason an admin can act on; resolves the host (blocking)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("must start with https:// or http://")
    if not parts.hostname:
        raise UnsafeUrl("has no host")
    host_and_port = parts.netloc.rpartition("@")[2]
    if host_and_port.startswith("[") and host_and_port.partition("]")[2][:1] not in ("", ":"):
        raise UnsafeUrl("is not a valid URL: Invalid IPv6 URL")  # `[::1]x`: the HTTP client refuses it
    if parts.username or parts.password:
        raise UnsafeUrl("must not carry credentials; use the token or a custom header instead")
    if any(ch <= " " or ch == "\x7f" for ch in url):
        raise UnsafeUrl("must not contain spaces or control characters")
    try:
        # What the resolver does to a name first; a label empty or past 63 characters fails.
        parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise UnsafeUrl(f"host {parts.hostname[:60]!r} is not a valid host name ({exc})") from exc
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"host {parts.hostname!r} does not resolve ({exc.strerror})", transient=True) from exc
    except UnicodeError as exc:  # the name did not survive IDNA encoding after all
        raise UnsafeUrl(f"host {parts.hostname[:60]!r} is not a valid host name ({exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if is_internal_address(address):
            raise UnsafeUrl(f"resolves to {address}, {INTERNAL_HINT}")


#: NAT64's well-known prefix (RFC 6052): the last 32 bits are the IPv4 address reached.
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
#: Always refused: NAT64's local-use prefix (RFC 8215) and the deprecated site-local
#: addresses (RFC 3879), both inside a network by definition.
INTERNAL_IPV6_NETWORKS = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("fec0::/10"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any: IPv4-mapped (::ffff:a.b.c.d),
    6to4 (2002:AABB:CCDD::/48 for AA.BB.CC.DD) and NAT64 (64:ff9b::a.b.c.d). Reaching one
    reaches that IPv4 address, so it is judged as that address. (IPv4-compatible ::a.b.c.d,
    deprecated, and Teredo are refused as they are: reserved, and private.)"""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_internal_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for addresses destinations may not reach unless private destinations are allowed."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_site_local or any(address in network for network in INTERNAL_IPV6_NETWORKS):
            return True
        embedded = embedded_ipv4(address)
        if embedded is not None and is_internal_address(embedded):
            return True
        if address.ipv4_mapped is not None or address in NAT64_PREFIX:
            return False  # a public IPv4 address in IPv6 form (which Python counts as reserved)
    return (
        address in METADATA_ADDRESSES
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"))
    )
