"""The delivery client: HTTP/1.1 POSTs over kept-alive connections, and nothing else.

A delivery is always the same exchange: one POST of bytes already rendered, to one URL
per destination, and an answer that is only classified (its status, a few headers, its
first 64 KiB). A general client pays per request for what this exchange never uses:
aiohttp builds a URL object, a multidict of headers, a request and a response object
with their tracing hooks, cookie handling and timers, about 150 CPU-µs a request on the
machine of the README's benchmarks, 400 to 500 on a loaded one, against 50 to 75 for a
plain protocol on the same machine and load (`bench/http_client.py` measures both).
For a per-event destination (one request per event) that is most of the cost of
delivering an event.

So this module writes the request itself and parses the answer with httptools (the C
parser of llhttp that uvicorn uses for the server side): per request, one write and one
parse. What a SIEM's HTTP endpoint needs is kept:

- a pool of connections per origin, reused while the server keeps them alive (closed
  after 30 s idle); a request that finds its kept-alive connection closed by the server
  before any answer (its idle timeout, without `Connection: close`) is sent once more at
  once on a new connection;
- TLS with the destination's own context (`delivery.tls`), the host name checked;
- the SSRF guard at every new connection: the host name is resolved here and each
  address checked (`AddressRefused`) before connecting, and the connection is made to the
  very address checked, so DNS cannot change between the check and the connect;
- timeouts: connecting (resolving and the TLS handshake included), and the wait for the
  answer's next bytes; the caller bounds the whole exchange;
- answers kept up to a bound (a connection whose answer went past it is closed, not
  read on), decoded when a server compressed them unasked (gzip, deflate), chunked or
  not, or read until the server closes;
- no redirects (a 3xx is an answer like any other), no cookies, no proxies.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import os
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import httptools

from auditrelay.security import INTERNAL_HINT, is_internal_address

#: A kept-alive connection unused for longer is closed rather than reused (servers close
#: theirs after 5 to 75 s; reusing one they are about to close costs a resend).
IDLE_SECONDS = 30.0


class AddressRefused(OSError):
    """A destination's host resolved to an address destinations may not reach."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(None, f"{host} resolves to {address}, {INTERNAL_HINT}")
        self.host = host
        self.address = address

    def __str__(self) -> str:
        return str(self.strerror)  # without OSError's "[Errno None] " prefix


class ConnectTimeout(TimeoutError):
    """No connection (resolving and TLS included) within the connect timeout."""


class ReadTimeout(TimeoutError):
    """No byte of the answer came within the read timeout."""


class ConnectFailed(OSError):
    """No connection could be made to any address of the host (`reason` says why)."""

    def __init__(self, host: str, port: int, reason: OSError) -> None:
        # asyncio's "Connect call failed (address)" says less than the errno's own words.
        if isinstance(reason, socket.gaierror) or not reason.errno:
            detail = reason.strerror or str(reason) or type(reason).__name__
        else:
            detail = os.strerror(reason.errno)
        super().__init__(reason.errno, f"cannot connect to {host}:{port}: {detail}")
        self.reason = reason

    def __str__(self) -> str:
        return str(self.strerror)


class Disconnected(ConnectionError):
    """The server closed the connection before any byte of an answer."""


class BadAnswer(ConnectionError):
    """What came back is not an HTTP/1.x answer, or it stopped in the middle."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one URL's requests go: its pool's key and the request line's target."""

    scheme: str
    host: str
    port: int
    path: str
    host_header: str

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the URL is not an http(s) URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = (parts.scheme == "https" and port == 443) or (parts.scheme == "http" and port == 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, host, port, path, shown if default else f"{shown}:{port}")


def request_head(target: Target, headers: Mapping[str, str], length: int, user_agent: str) -> bytes:
    """The request line and headers, with Host, Content-Length and (unless given) User-Agent.

    Raises ValueError for a header the protocol cannot carry (a line break or NUL in it,
    or a name that is not a token): it would split the request. A destination sends the
    same headers with every request, so all but Content-Length is made and checked once
    per set of headers (`_head_prefix`, cached)."""
    prefix = _head_prefix(target.path, target.host_header, tuple(headers.items()), user_agent)
    return b"%sContent-Length: %d\r\n\r\n" % (prefix, length)


@functools.lru_cache(maxsize=256)
def _head_prefix(path: str, host_header: str, headers: tuple[tuple[str, str], ...], user_agent: str) -> bytes:
    # Bounded and least-recently-used first out: signed requests' headers change at every
    # attempt and pass through, the destinations' constant ones stay.
    lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}"]
    given_agent = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("host", "content-length", "connection", "transfer-encoding"):
            continue  # ours, and only ours
        if not name or not _is_token(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"header {name!r} holds a line break or NUL")
        given_agent = given_agent or lowered == "user-agent"
        lines.append(f"{name}: {value}")
    if not given_agent:
        lines.append(f"User-Agent: {user_agent}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _is_token(name: str) -> bool:
    return all(c in _TOKEN for c in name)


@dataclass(slots=True)
class Answer:
    status: int
    #: Lowercase names; a repeated header keeps its last value.
    headers: dict[str, str]
    body: bytes


@dataclass(eq=False)
class _Exchange:
    """The answer being read on one connection."""

    limit: int
    waiter: asyncio.Future[None]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    headers_done: bool = False
    #: The answer went past `limit`: what was kept is the answer, the connection is closed.
    cut: bool = False
    done: bool = False
    #: Any byte came back (a close before any is a stale kept-alive connection).
    answered: bool = False
    last_read: float = 0.0
    #: The read timeout's timer: re-armed while bytes keep coming, cancelled when it ends.
    timer: asyncio.TimerHandle | None = None


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reusable = False
        self._parser = httptools.HttpResponseParser(self)
        self._exchange: _Exchange | None = None
        self._header_name = b""

    # -- asyncio.Protocol --

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, and need not.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self._exchange
        if exchange is None or exchange.waiter.done():
            return
        if not exchange.answered:
            if isinstance(exc, ssl.SSLError):
                # A TLS alert instead of an answer (TLS 1.3 refuses a missing client
                # certificate after the handshake): what it says is the point.
                exchange.waiter.set_exception(exc)
                return
            reason = f" ({exc.strerror or exc})" if isinstance(exc, OSError) else ""
            exchange.waiter.set_exception(
                Disconnected(f"the server closed the connection before answering{reason}")
            )
        elif exchange.headers_done and "content-length" not in exchange.headers and not self._chunked():
            # An answer without a length ends where the connection does.
            exchange.done = True
            exchange.waiter.set_result(None)
        else:
            exchange.waiter.set_exception(BadAnswer("the connection closed in the middle of the answer"))

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is None or exchange.done:
            self.close()  # bytes nobody asked for: this connection cannot be trusted
            return
        exchange.answered = True
        exchange.last_read = time.monotonic()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadAnswer(f"invalid HTTP answer: {exc}"))
        except httptools.HttpParserUpgrade:
            self._fail(BadAnswer("the server switched protocols"))

    # -- httptools' callbacks --

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._exchange is not None
        self._exchange.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        exchange = self._exchange
        assert exchange is not None
        exchange.status = self._parser.get_status_code()
        exchange.headers_done = True

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.done:
            return  # cut at the bound already: the rest of this read is dropped
        room = exchange.limit - len(exchange.body)
        if len(body) <= room:
            exchange.body += body
            return
        exchange.body += body[:room]
        exchange.cut = True
        self._finish(reusable=False)

    def on_message_complete(self) -> None:
        exchange = self._exchange
        assert exchange is not None
        if exchange.done:
            return
        if 100 <= exchange.status < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            exchange.headers.clear()
            exchange.headers_done = False
            return
        self._finish(reusable=self._parser.should_keep_alive())

    # -- the exchange --

    async def exchange(self, head: bytes, body: bytes, limit: int, read_timeout: float) -> Answer:
        assert self.transport is not None and self._exchange is None
        loop = asyncio.get_running_loop()
        exchange = _Exchange(limit, loop.create_future(), last_read=time.monotonic())
        self._exchange = exchange
        self.reusable = False
        if len(body) < 64 * 1024:
            self.transport.write(head + body)  # one segment: small bodies are most requests
        else:
            self.transport.write(head)
            self.transport.write(body)
        exchange.timer = loop.call_later(read_timeout, self._check_read, read_timeout)
        try:
            await exchange.waiter
        finally:
            if exchange.timer is not None:
                exchange.timer.cancel()
            self._exchange = None
            if not exchange.done:
                self.close()  # cancelled or failed mid-answer: the connection's state is unknown
        return Answer(exchange.status, exchange.headers, _decoded(exchange))

    def _check_read(self, read_timeout: float) -> None:
        exchange = self._exchange
        if exchange is None or exchange.waiter.done():
            return
        waited = time.monotonic() - exchange.last_read
        if waited >= read_timeout:
            self._fail(ReadTimeout("timed out waiting for the answer"))
        else:
            loop = asyncio.get_running_loop()
            exchange.timer = loop.call_later(read_timeout - waited, self._check_read, read_timeout)

    def _finish(self, reusable: bool) -> None:
        exchange = self._exchange
        assert exchange is not None
        exchange.done = True
        self.reusable = reusable and not exchange.cut and not self.closed
        if not exchange.waiter.done():
            exchange.waiter.set_result(None)

    def _fail(self, exc: Exception) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.waiter.done():
            exchange.waiter.set_exception(exc)
        self.close()

    def _chunked(self) -> bool:
        assert self._exchange is not None
        return "chunked" in self._exchange.headers.get("transfer-encoding", "").lower()

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self.transport is not None:
            self.transport.close()


def _decoded(exchange: _Exchange) -> bytes:
    """The answer's bytes, decompressed (up to the same bound) when the server compressed
    them without being asked."""
    body = bytes(exchange.body)
    encoding = exchange.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("gzip", "x-gzip", "deflate") or not body:
        return body
    # 47: a gzip or zlib header, whichever it is; a bare deflate stream falls back to raw.
    for wbits in (47, -15):
        try:
            return zlib.decompressobj(wbits).decompress(body, exchange.limit)
        except zlib.error:
            continue
    return body


class _Pool:
    """The kept-alive connections of one origin."""

    def __init__(self, client: Http1Client, target: Target) -> None:
        self._client = client
        self._target = target
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def post(self, head: bytes, body: bytes, limit: int) -> Answer:
        client = self._client
        connection = self._take_idle()
        reused = connection is not None
        if connection is None:
            connection = await self._connect()
        try:
            try:
                answer = await connection.exchange(head, body, limit, client.read_timeout)
            except Disconnected:
                if not reused:
                    raise
                # Closed by the server while idle (its timeout, unannounced): at once, anew.
                connection = await self._connect()
                answer = await connection.exchange(head, body, limit, client.read_timeout)
        finally:
            self._give_back(connection)
        return answer

    def _take_idle(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            self._drop(connection)
        return None

    def _give_back(self, connection: _Connection) -> None:
        if connection.reusable and not connection.closed and not self._client.closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            self._drop(connection)

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    async def _connect(self) -> _Connection:
        client = self._client
        target = self._target
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(client.connect_timeout):
                addresses = await self._addresses()
                last: OSError | None = None
                for family, address in addresses:
                    try:
                        _transport, connection = await loop.create_connection(
                            _Connection,
                            address,
                            target.port,
                            family=family,
                            ssl=client.ssl_context if target.scheme == "https" else None,
                            server_hostname=target.host if target.scheme == "https" else None,
                        )
                    except ssl.SSLError:
                        raise  # the server answered, and TLS failed: another address would not help
                    except OSError as exc:
                        last = exc
                        continue
                    self._open.add(connection)
                    return connection
        except TimeoutError:
            raise ConnectTimeout("timed out connecting") from None
        assert last is not None
        raise ConnectFailed(target.host, target.port, last)

    async def _addresses(self) -> list[tuple[int, str]]:
        target = self._target
        try:
            literal = ipaddress.ip_address(target.host)
        except ValueError:
            pass
        else:
            # An IP literal cannot change: the URL guard checked it (save, loop start, test).
            return [(socket.AF_INET6 if literal.version == 6 else socket.AF_INET, target.host)]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectFailed(target.host, target.port, exc) from None
        found: list[tuple[int, str]] = []
        for family, _type, _proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            # One internal address among the answers refuses the lot, as the URL guard does
            # (a link-local IPv6 answer carries its zone: `fe80::1%eth0`).
            if not self._client.allow_private and is_internal_address(
                ipaddress.ip_address(address.split("%", 1)[0])
            ):
                raise AddressRefused(target.host, address)
            if (family, address) not in found:
                found.append((family, address))
        return found

    def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()


class Http1Client:
    """POSTs to a few URLs (a destination has one), each origin with its pool of kept-alive
    connections; use it with `async with` (or `close()` it)."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        allow_private: bool,
        connections: int,
        ssl_context: ssl.SSLContext | None,
        user_agent: str,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.allow_private = allow_private
        self._ssl_context = ssl_context
        self.user_agent = user_agent
        self.closed = False
        #: At most this many requests at once per origin (the window's maximum).
        self._connections = connections
        self._pools: dict[tuple[str, str, int], tuple[_Pool, asyncio.Semaphore]] = {}
        self._targets: dict[str, Target] = {}

    @property
    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()  # only an https URL needs one
        return self._ssl_context

    async def post(self, url: str, headers: Mapping[str, str], body: bytes, limit: int) -> Answer:
        """POST `body` to `url`; the answer's status, headers and first `limit` bytes."""
        if self.closed:
            raise RuntimeError("the client is closed")
        target = self._targets.get(url)
        if target is None:
            target = Target.of(url)
            if len(self._targets) < 64:
                self._targets[url] = target
        head = request_head(target, headers, len(body), self.user_agent)
        key = (target.scheme, target.host, target.port)
        entry = self._pools.get(key)
        if entry is None:
            entry = self._pools[key] = (_Pool(self, target), asyncio.Semaphore(self._connections))
        pool, slots = entry
        async with slots:
            return await pool.post(head, body, limit)

    async def close(self) -> None:
        self.closed = True
        for pool, _slots in self._pools.values():
            pool.close()
        self._pools.clear()

    async def __aenter__(self) -> Http1Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
