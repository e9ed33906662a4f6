"""One listening socket per worker process on the same port (`SO_REUSEPORT`), so the kernel
spreads connections over the workers.

uvicorn's supervisor binds one socket and hands it to every worker; the workers then race
to accept from it, and the one awake first takes every connection waiting. A few
keep-alive clients (a forwarder, an SDK with a small pool) then all land in one worker,
which parses and validates on one core while the other idles (measured: 67 and 1 CPU-µs
per event in the two workers, a third less throughput than when they were spread). With
`SO_REUSEPORT` each worker listens on a socket of its own and the kernel picks one per new
connection by a hash of its addresses.

The parent (`auditrelay.workers`) holds a `ReusePortSocket`: bound (which keeps the port
from any program not using `SO_REUSEPORT` as the same user) but never listening, so no
connection waits on it. Each worker it forks binds a socket of its own (`listening_socket`),
which uvicorn then listens on.
"""

from __future__ import annotations

import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port` with `SO_REUSEPORT` (not listening yet).

    Made with `IPPROTO_TCP` named, not the default protocol 0: asyncio turns Nagle's
    algorithm off (`TCP_NODELAY`) only on sockets whose `proto` says TCP, and accepted
    sockets inherit the listener's. With Nagle on, an answer written as a head and then a
    body waited for the client's delayed ACK: every ingest answer took 40 ms more.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.set_inheritable(True)
    except OSError:
        sock.close()
        raise
    return sock


class ReusePortSocket(socket.socket):
    """The parent's placeholder: bound to the port, never listening."""

    @classmethod
    def bind_to(cls, host: str, port: int) -> ReusePortSocket:
        plain = listening_socket(host, port)
        sock = cls(plain.family, plain.type, plain.proto, fileno=plain.detach())
        return sock
