"""The delivery sender over real loopback sockets: what goes on the wire, bounded answers,
every failure as a RETRY verdict (without the URL, a credential for Sumo Logic), and the
connect-time SSRF check that catches a host name resolving inside the network."""

from __future__ import annotations

import asyncio
import gzip
import re
from urllib.parse import urlsplit

import pytest

from auditrelay.delivery.sender import MAX_ANSWER_BYTES, Attempt, attempt, new_client
from auditrelay.destinations import KINDS, USER_AGENT, Outcome, OutgoingRequest
from auditrelay.security import UnsafeUrl, check_destination_url
from tests.support import Receiver, free_port

JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Custom": "yes"}


def post(
    url: str,
    headers: dict[str, str] | None = None,
    allow_private: bool = True,
    request_timeout: float = 5.0,
    total_timeout: float = 5.0,
) -> Attempt:
    request = OutgoingRequest(url, JSON_HEADERS if headers is None else headers, b'{"a":1}', ())

    async def run() -> Attempt:
        async with new_client(2.0, request_timeout, allow_private) as client:
            return await attempt(client, KINDS["http"], request, total_timeout)

    return asyncio.run(run())


def on_localhost(receiver: Receiver, path: str = "/audit") -> str:
    """The receiver's URL by host name, so the resolver (not an IP literal) is involved."""
    return f"http://localhost:{urlsplit(receiver.url).port}{path}"


def test_headers_on_the_wire_are_the_requests_own(receiver: Receiver) -> None:
    result = post(receiver.url + "/audit")
    assert result.verdict.outcome is Outcome.DELIVERED and result.status == 200
    assert result.answer == b'{"ok":true}'
    sent = receiver.requests[0]
    assert sent.body == b'{"a":1}'
    assert sent.header("user-agent") == USER_AGENT
    assert sent.header("content-type") == "application/json"
    assert sent.header("x-custom") == "yes"
    # Compression is not invited: answers are only classified.
    assert sent.header("accept-encoding") is None


def test_the_user_agent_and_content_type_are_never_made_up(receiver: Receiver) -> None:
    post(receiver.url, headers={"X-Custom": "yes"})
    sent = receiver.requests[0]
    assert sent.header("user-agent") == USER_AGENT
    # No `application/octet-stream` made up by the HTTP layer.
    assert sent.header("content-type") is None


def test_an_answer_is_kept_up_to_the_bound(receiver: Receiver) -> None:
    big = b"x" * (MAX_ANSWER_BYTES * 4)
    receiver.script = [(500, {"Content-Type": "text/plain"}, big), (200, {}, big)]
    failed = post(receiver.url)
    assert failed.verdict.outcome is Outcome.RETRY and failed.status == 500
    assert failed.answer == big[:MAX_ANSWER_BYTES]
    delivered = post(receiver.url)
    assert delivered.verdict.outcome is Outcome.DELIVERED and len(delivered.answer) == MAX_ANSWER_BYTES


def test_a_compressed_answer_sent_unasked_is_decoded(receiver: Receiver) -> None:
    receiver.script = [(503, {"Content-Encoding": "gzip"}, gzip.compress(b"busy, come back later"))]
    result = post(receiver.url)
    assert result.verdict.outcome is Outcome.RETRY
    assert result.verdict.message == "HTTP 503: busy, come back later"


def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.script = [(302, {"Location": receiver.url + "/elsewhere"}, b"")]
    result = post(receiver.url + "/audit")
    assert result.verdict.outcome is Outcome.RETRY and result.status == 302
    assert "redirects are not followed" in result.verdict.message
    assert len(receiver.failed) == 1 and not receiver.requests


def test_a_silent_server_times_out_as_a_retry_without_the_url(receiver: Receiver) -> None:
    receiver.script = ["hang", "hang"]
    by_read = post(receiver.url + "/secret-path", request_timeout=0.3, total_timeout=5)
    assert by_read.verdict.outcome is Outcome.RETRY and by_read.status is None
    assert by_read.verdict.message == "timed out waiting for the answer"
    by_total = post(receiver.url + "/secret-path", request_timeout=5, total_timeout=0.3)
    assert by_total.verdict.message == "no complete answer within 0.3 s"


def test_a_closed_port_is_a_retry_naming_the_host_but_not_the_path() -> None:
    result = post(f"http://127.0.0.1:{free_port()}/secret-path?key=secret")
    assert result.verdict.outcome is Outcome.RETRY and result.status is None
    assert result.verdict.message.startswith("connection failed: cannot connect to 127.0.0.1:"), (
        result.verdict
    )
    assert "refused" in result.verdict.message and "secret" not in result.verdict.message


def test_a_header_value_the_http_layer_refuses_is_a_retry(receiver: Receiver) -> None:
    result = post(receiver.url, headers={"X-Bad": "a\r\nInjected: 1"})
    assert result.verdict.outcome is Outcome.RETRY
    assert result.verdict.message.startswith("request could not be sent: ValueError")
    assert not receiver.requests and not receiver.failed


def test_a_host_name_resolving_inside_the_network_is_refused_when_connecting(receiver: Receiver) -> None:
    # The save-time check is long past: only the connect-time check stands between a
    # rebound name and the internal address.
    refused = post(on_localhost(receiver), allow_private=False)
    assert refused.verdict.outcome is Outcome.RETRY and refused.status is None
    assert re.fullmatch(
        r"URL refused when connecting: localhost resolves to (127\.0\.0\.1|::1), a private, loopback, "
        r"link-local or metadata address; set AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS=true to allow it",
        refused.verdict.message,
    ), refused.verdict.message
    assert not receiver.requests and not receiver.failed

    allowed = post(on_localhost(receiver), allow_private=True)
    assert allowed.verdict.outcome is Outcome.DELIVERED
    assert [r.path for r in receiver.requests] == ["/audit"]


def test_ip_literal_hosts_are_left_to_the_url_guard(receiver: Receiver) -> None:
    # Nothing is resolved for an IP literal, so the connect-time check cannot see it;
    # the URL guard refuses it before anything is sent (save, loop start, /test, resend).
    with pytest.raises(UnsafeUrl, match=r"resolves to 127\.0\.0\.1"):
        check_destination_url(receiver.url, allow_private=False)
    assert post(receiver.url, allow_private=False).verdict.outcome is Outcome.DELIVERED


def test_a_kept_alive_connection_the_server_closed_is_retried_at_once_on_a_fresh_one() -> None:
    """A receiver that closes idle kept-alive connections without `Connection: close`: the
    next request on such a connection sees the close before any answer. Each must be sent
    again at once on a new connection and delivered, not reported as a failure."""
    connections = 0

    async def scenario() -> list[Attempt]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            answered = 0
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                if answered:  # the second request on this connection: closed, unanswered
                    writer.close()
                    return
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                answered += 1

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        request = OutgoingRequest(f"http://127.0.0.1:{port}/", JSON_HEADERS, b'{"a":1}', ())
        try:
            async with new_client(2.0, 5.0, True) as client:
                return [await attempt(client, KINDS["http"], request, 5.0) for _ in range(5)]
        finally:
            server.close()
            await server.wait_closed()

    results = asyncio.run(scenario())
    assert [r.verdict.outcome for r in results] == [Outcome.DELIVERED] * 5, [r.verdict for r in results]
    assert connections == 5, "every request after the first found its connection closed and took a new one"
