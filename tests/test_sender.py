"""The delivery sender over real loopback sockets: what goes on the wire, bounded answers,
every failure as a RETRY verdict (without the URL, a credential for Sumo Logic)."""

from __future__ import annotations

import asyncio
import gzip

from auditrelay.delivery.sender import MAX_ANSWER_BYTES, Attempt, attempt, new_client
from auditrelay.destinations import KINDS, Outcome, OutgoingRequest
from auditrelay.destinations.base import USER_AGENT
from tests.support import Receiver, free_port

JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Custom": "yes"}


def post(
    url: str,
    headers: dict[str, str] | None = None,
    request_timeout: float = 5.0,
    total_timeout: float = 5.0,
) -> Attempt:
    request = OutgoingRequest(url, JSON_HEADERS if headers is None else headers, b'{"a":1}', ())

    async def run() -> Attempt:
        async with new_client(2.0, request_timeout) as client:
            return await attempt(client, KINDS["http"], request, total_timeout)

    return asyncio.run(run())


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


def test_the_user_agent_and_content_type_are_never_aiohttps_defaults(receiver: Receiver) -> None:
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
    assert result.verdict.message.startswith("connection failed: ClientConnectorError: ")
    assert "127.0.0.1" in result.verdict.message and "secret" not in result.verdict.message


def test_a_header_value_the_http_layer_refuses_is_a_retry(receiver: Receiver) -> None:
    result = post(receiver.url, headers={"X-Bad": "a\r\nInjected: 1"})
    assert result.verdict.outcome is Outcome.RETRY
    assert result.verdict.message.startswith("request could not be sent: ValueError")
    assert not receiver.requests and not receiver.failed
