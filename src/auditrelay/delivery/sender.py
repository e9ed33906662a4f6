"""One HTTP attempt: send a rendered request, read a bounded answer, classify it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp

from auditrelay.delivery.resolver import AddressRefused, GuardedResolver
from auditrelay.destinations import DestinationKind, Outcome, OutgoingRequest, Verdict
from auditrelay.destinations.base import USER_AGENT

#: Keep at most this much of an answer: enough for any error message, bounded memory.
MAX_ANSWER_BYTES = 64 * 1024

#: aiohttp adds these when a request lacks them. Accept-Encoding: answers are small and only
#: classified, so compression is not invited (an answer compressed anyway is still decoded,
#: by aiohttp's bounded decompressor). Content-Type: every kind sets its own; a request that
#: lacked one would go without rather than as aiohttp's `application/octet-stream`.
NO_AUTO_HEADERS = ("Accept-Encoding", "Content-Type")


@dataclass(frozen=True, slots=True)
class Attempt:
    verdict: Verdict
    status: int | None
    latency_ms: float
    answer: bytes


def new_client(connect_timeout: float, request_timeout: float, allow_private: bool) -> aiohttp.ClientSession:
    """One client (one connection pool, kept alive) per destination; use it with `async with`.

    Unless `allow_private`, every address a host name resolves to is checked against the URL
    guard before connecting (`GuardedResolver`), so DNS that changes after the destination was
    saved cannot point delivery inside the network. IP-literal hosts are not resolved, and so
    not checked here: `check_destination_url` refuses internal ones before any sending.
    """
    connector = aiohttp.TCPConnector(
        limit=4,
        keepalive_timeout=30,
        resolver=None if allow_private else GuardedResolver(),
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Connecting (resolving included) and each read are bounded here; `attempt` bounds
        # the whole exchange, writing included.
        timeout=aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=request_timeout
        ),
        headers={"User-Agent": USER_AGENT},
        skip_auto_headers=NO_AUTO_HEADERS,
        # Proxies from the environment would silently reroute audit data; not followed.
        trust_env=False,
        # Deliveries are stateless: a destination setting cookies must not get them back.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def attempt(
    client: aiohttp.ClientSession, kind: DestinationKind, request: OutgoingRequest, total_timeout: float
) -> Attempt:
    started = time.perf_counter()
    try:
        # The session's timeouts bound each phase; this bounds the whole exchange, so a server
        # trickling one byte a second cannot hold the loop forever.
        async with asyncio.timeout(total_timeout):
            async with client.post(
                request.url, data=request.content, headers=request.headers, allow_redirects=False
            ) as r:
                answer = bytearray()
                while len(answer) < MAX_ANSWER_BYTES:
                    chunk = await r.content.read(MAX_ANSWER_BYTES - len(answer))
                    if not chunk:
                        break
                    answer += chunk
                # Leaving with the body unread closes the connection instead of reusing it.
                status = r.status
                headers = {k.lower(): v for k, v in r.headers.items()}
    # aiohttp's phase timeouts are TimeoutErrors too: they come before the overall one.
    except aiohttp.ConnectionTimeoutError:
        return _failed("timed out connecting", started)
    except aiohttp.ServerTimeoutError:
        return _failed("timed out waiting for the answer", started)
    except TimeoutError:
        return _failed(f"no complete answer within {total_timeout:g} s", started)
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, AddressRefused):
            return _failed(f"URL refused when connecting: {exc.os_error}", started)
        # "Cannot connect to host h:p ssl:... [reason]": the host, never the URL's path.
        return _failed(f"connection failed: {type(exc).__name__}: {exc}", started)
    except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
        return _failed(f"request could not be sent: {type(exc).__name__}: the URL is not valid", started)
    except aiohttp.ClientResponseError as exc:
        # Its str() ends with the URL.
        return _failed(f"connection failed: {type(exc).__name__}: {exc.message}".rstrip(": "), started)
    except (aiohttp.ClientError, OSError) as exc:
        return _failed(f"connection failed: {type(exc).__name__}: {exc}".rstrip(": "), started)
    except (UnicodeError, ValueError) as exc:
        # The request could not even be written (e.g. a header value the HTTP layer refuses):
        # a settings problem to show the admin, not a reason to crash the loop.
        return _failed(f"request could not be sent: {type(exc).__name__}: {exc}", started)
    latency = (time.perf_counter() - started) * 1000
    body = bytes(answer)
    return Attempt(kind.verdict(status, headers, body), status, latency, body)


def _failed(message: str, started: float) -> Attempt:
    latency = (time.perf_counter() - started) * 1000
    return Attempt(Verdict(Outcome.RETRY, message), None, latency, b"")
