"""One HTTP attempt: send a rendered request, read a bounded answer, classify it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from auditrelay.destinations import DestinationKind, Outcome, OutgoingRequest, Verdict

#: Keep at most this much of an answer: enough for any error message, bounded memory.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    verdict: Verdict
    status: int | None
    latency_ms: float
    answer: bytes


def new_client(connect_timeout: float, request_timeout: float) -> httpx.AsyncClient:
    """One client (one connection pool, kept alive) per destination."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(request_timeout, connect=connect_timeout),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=30),
        # Proxies from the environment would silently reroute audit data; not followed.
        trust_env=False,
    )


async def attempt(
    client: httpx.AsyncClient, kind: DestinationKind, request: OutgoingRequest, total_timeout: float
) -> Attempt:
    started = time.perf_counter()
    try:
        # httpx's timeouts bound each phase; this bounds the whole exchange, so a server
        # trickling one byte a second cannot hold the loop forever.
        async with asyncio.timeout(total_timeout):
            async with client.stream(
                "POST", request.url, content=request.content, headers=request.headers
            ) as r:
                answer = bytearray()
                async for chunk in r.aiter_bytes():
                    answer += chunk[: MAX_ANSWER_BYTES - len(answer)]
                    if len(answer) >= MAX_ANSWER_BYTES:
                        break
                status = r.status_code
                headers = {k.lower(): v for k, v in r.headers.items()}
    except TimeoutError:
        return _failed(f"no complete answer within {total_timeout:g} s", started)
    except httpx.TimeoutException as exc:
        return _failed(f"timed out ({type(exc).__name__})", started)
    except httpx.HTTPError as exc:
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
