"""The delivery client's resolver: the SSRF guard applied again at every new connection.

`check_destination_url` checks a destination's host when it is saved, when its loop starts,
on /test and on a dead-letter resend. A name can resolve elsewhere afterwards (DNS
rebinding: a public address at save time, 127.0.0.1 a minute later), so the delivery client
resolves through `GuardedResolver`, which refuses any internal address before aiohttp
connects to it. aiohttp's DNS cache only ever holds what this resolver returned.

aiohttp does not ask a resolver about IP-literal hosts (`http://10.0.0.1/`): those cannot
change, and `check_destination_url` refuses internal ones at each of the points above.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp import ThreadedResolver
from aiohttp.abc import ResolveResult

from auditrelay.security import INTERNAL_HINT, is_internal_address


class AddressRefused(OSError):
    """A destination's host resolved to an address destinations may not reach."""

    def __init__(self, host: str, address: str) -> None:
        # No errno: nothing failed at the socket level. aiohttp wraps this error in a
        # ClientConnectorDNSError whose message shows `strerror`.
        super().__init__(None, f"{host} resolves to {address}, {INTERNAL_HINT}")
        self.host = host
        self.address = address

    def __str__(self) -> str:
        return str(self.strerror)  # without OSError's "[Errno None] " prefix


class GuardedResolver(ThreadedResolver):
    """The system resolver (getaddrinfo, as the URL guard uses), refusing internal addresses.

    One internal address among the answers refuses the lot, as `check_destination_url`
    does: a name that mixes public and internal addresses is not a plain public host.
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        for result in results:
            # Link-local IPv6 answers carry a zone (`fe80::1%eth0`).
            address = ipaddress.ip_address(result["host"].split("%", 1)[0])
            if is_internal_address(address):
                raise AddressRefused(host, str(address))
        return results
