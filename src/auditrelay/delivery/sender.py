"""The sender: one HTTP attempt of a rendered request, its answer read (bounded) and classified.

One sender serves the delivery loop, `/test` and the dead-letter resend alike, so timeouts,
the URL guard and the HTTP client are decided here and nowhere else. The loop only sees the
`Sender` protocol (an async callable from request to `Attempt`), so its rules can be tested
with a fake that answers whatever a test needs. Every error of the HTTP client
(`delivery.http1`) is turned into an `Attempt` here, in `attempt`: none reaches the loop.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

from auditrelay.config import Settings
from auditrelay.delivery.http1 import (
    AddressRefused,
    BadAnswer,
    ConnectFailed,
    ConnectTimeout,
    Disconnected,
    Http1Client,
    ReadTimeout,
)
from auditrelay.delivery.tls import TlsSettingsError, ssl_context
from auditrelay.destinations import (
    USER_AGENT,
    DestinationKind,
    Outcome,
    OutgoingRequest,
    Verdict,
    hidden_strings,
    kind_named,
)
from auditrelay.model import Destination, TlsSettings
from auditrelay.security import check_destination_url, redact, redact_bytes, signature_headers, signing_key

#: Keep at most this much of an answer: enough for any error message, bounded memory.
MAX_ANSWER_BYTES = 64 * 1024

DEFAULT_TLS = TlsSettings()


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt came to: the classified answer, the HTTP status (None when no answer
    came), how long it took, and the first bytes of the answer."""

    verdict: Verdict
    status: int | None
    latency_ms: float
    answer: bytes

    @property
    def outcome(self) -> Outcome:
        return self.verdict.outcome

    @property
    def delivered(self) -> bool:
        return self.verdict.outcome is Outcome.DELIVERED


class Sender(Protocol):
    """What the delivery loop sends through."""

    async def __call__(self, request: OutgoingRequest) -> Attempt:
        """Send one request and classify what came back; never raises for a failed send."""

    async def check_destination(self) -> None:
        """Raise `security.UnsafeUrl` when the destination's URL may not be reached now."""


class HttpSender:
    """The real sender of one destination: its own connection pool, kept alive between
    requests, its TLS context (built once, when entered) and its signing keys; use it with
    `async with`."""

    def __init__(
        self,
        kind: DestinationKind,
        url: str,
        settings: Settings,
        *,
        connections: int = 4,
        signing_secrets: Sequence[str] = (),
        tls: TlsSettings = DEFAULT_TLS,
    ) -> None:
        self._kind = kind
        #: One connection per request in flight: the window's maximum.
        self._connections = connections
        self._url = url
        self._allow_private = settings.allow_private_destinations
        self._connect_timeout = settings.connect_timeout_seconds
        self._request_timeout = settings.request_timeout_seconds
        self._total_timeout = settings.request_timeout_seconds + settings.connect_timeout_seconds
        #: Decoded once: every request is signed with each (current secret first).
        self._signing_keys = tuple(signing_key(secret) for secret in signing_secrets)
        self._tls = tls
        self._ssl: ssl.SSLContext | None = None
        #: Why the TLS settings cannot make a context (every attempt then fails with it).
        self._tls_error: str | None = None
        self._client: Http1Client | None = None
        self._secrets: tuple[str, ...] = ()

    def hiding(self, secrets: tuple[str, ...]) -> HttpSender:
        """Replace these secrets in every answer and message this sender hands back
        (`security.secret_forms` of its destination)."""
        self._secrets = secrets
        return self

    @classmethod
    def for_destination(
        cls, destination: Destination, settings: Settings, *, connections: int = 4
    ) -> HttpSender:
        """The sender of `destination`, with its signing secrets and TLS settings."""
        secrets = [s for s in (destination.signing_secret, destination.signing_secret_previous) if s]
        return cls(
            kind_named(destination.kind),
            destination.url,
            settings,
            connections=connections,
            signing_secrets=secrets,
            tls=destination.tls,
        ).hiding(hidden_strings(destination))

    async def __aenter__(self) -> HttpSender:
        # Made here, not in __init__: a sender never entered leaves no session to close.
        # Only an https destination needs a TLS context: loading the system's CAs cost 52 ms
        # of CPU and 2.5 MB of memory (measured in a bare interpreter).
        if urlsplit(self._url).scheme == "https":
            try:
                self._ssl = ssl_context(self._tls)
            except TlsSettingsError as exc:
                self._tls_error = f"TLS settings cannot be used: {exc}"
        self._client = self._new_client()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __call__(self, request: OutgoingRequest) -> Attempt:
        if self._client is None:
            raise RuntimeError("use the sender with `async with` before sending")
        if self._tls_error is not None:
            return _failed(self._tls_error, time.perf_counter())
        if self._client.closed:
            # A loop that restarts after an internal error gets a fresh pool, not a dead one.
            self._client = self._new_client()
        result = await attempt(self._client, self._kind, request, self._total_timeout, self._signing_keys)
        if self._secrets:
            result = replace(
                result,
                verdict=replace(result.verdict, message=redact(result.verdict.message, self._secrets)),
                answer=redact_bytes(result.answer, self._secrets),
            )
        return result

    async def check_destination(self) -> None:
        await check_url(self._url, self._allow_private)

    def _new_client(self) -> Http1Client:
        return new_client(
            self._connect_timeout,
            self._request_timeout,
            self._allow_private,
            self._connections,
            ssl_context=self._ssl,
        )


async def check_url(url: str, allow_private: bool) -> None:
    """The URL guard (`security.check_destination_url`), off the event loop since resolving
    blocks. A host can resolve elsewhere later: the client checks again at every new
    connection (`delivery.http1`)."""
    await asyncio.to_thread(check_destination_url, url, allow_private)


def new_client(
    connect_timeout: float,
    request_timeout: float,
    allow_private: bool,
    connections: int = 4,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> Http1Client:
    """One client (one pool of kept-alive connections per origin) per destination; use it
    with `async with`.

    Unless `allow_private`, every address a host name resolves to is checked against the URL
    guard before connecting, and the connection goes to the address checked, so DNS that
    changes after the destination was saved cannot point delivery inside the network.
    IP-literal hosts are not resolved, and so not checked here: `check_destination_url`
    refuses internal ones before any sending. `ssl_context` makes every HTTPS connection
    (None: the system's default). Compression of answers is not invited (they are small and
    only classified); no Content-Type is made up for a request without one.
    """
    return Http1Client(
        connect_timeout=connect_timeout,
        read_timeout=request_timeout,
        allow_private=allow_private,
        connections=connections,
        ssl_context=ssl_context,
        user_agent=USER_AGENT,
    )


async def attempt(
    client: Http1Client,
    kind: DestinationKind,
    request: OutgoingRequest,
    total_timeout: float,
    signing_keys: Sequence[bytes] = (),
) -> Attempt:
    started = time.perf_counter()
    try:
        # The client's timeouts bound connecting and each wait for the answer; this bounds
        # the whole exchange, so a server trickling one byte a second cannot hold the loop.
        # (A kept-alive connection the server closed unannounced is retried by the client.)
        async with asyncio.timeout(total_timeout):
            status, headers, answer = await _exchange(client, request, signing_keys)
    # The client's phase timeouts are TimeoutErrors too: they come before the overall one.
    except ConnectTimeout:
        return _failed("timed out connecting", started)
    except ReadTimeout:
        return _failed("timed out waiting for the answer", started)
    except TimeoutError:
        return _failed(f"no complete answer within {total_timeout:g} s", started)
    except ssl.SSLCertVerificationError as exc:
        return _failed(f"TLS certificate verification failed: {exc}", started)
    except ssl.SSLError as exc:
        return _failed(f"TLS handshake failed: {exc}", started)
    except AddressRefused as exc:
        return _failed(f"URL refused when connecting: {exc}", started)
    except ConnectFailed as exc:
        # "cannot connect to h:p: reason": the host, never the URL's path.
        return _failed(f"connection failed: {exc}", started)
    except (Disconnected, BadAnswer) as exc:
        return _failed(f"connection failed: {exc}", started)
    except OSError as exc:
        return _failed(f"connection failed: {type(exc).__name__}: {exc}".rstrip(": "), started)
    except (UnicodeError, ValueError) as exc:
        # The request could not even be written (e.g. a header value HTTP cannot carry):
        # a settings problem to show the admin, not a reason to crash the loop.
        return _failed(f"request could not be sent: {type(exc).__name__}: {exc}", started)
    latency = (time.perf_counter() - started) * 1000
    return Attempt(kind.verdict(status, headers, answer), status, latency, answer)


async def _exchange(
    client: Http1Client, request: OutgoingRequest, signing_keys: Sequence[bytes] = ()
) -> tuple[int, dict[str, str], bytes]:
    """POST the request; its status, headers (lowercase names) and the answer's first bytes.

    A signed request is signed here, at each attempt, over the very bytes posted: its
    `webhook-timestamp` is the attempt's (receivers refuse old ones), its `webhook-id` the
    request's own, the same at every retry."""
    headers = request.headers
    if signing_keys:
        signed = signature_headers(signing_keys, request.message_id, int(time.time()), request.content)
        headers = {**headers, **signed}
    answer = await client.post(request.url, headers, request.content, MAX_ANSWER_BYTES)
    return answer.status, answer.headers, answer.body


def _failed(message: str, started: float) -> Attempt:
    latency = (time.perf_counter() - started) * 1000
    return Attempt(Verdict(Outcome.RETRY, message), None, latency, b"")
