"""The delivery client's HTTP/1.1 over real loopback sockets, against servers that answer in
each of the ways a SIEM's endpoint (or what stands in front of it) may: chunked, without a
length until it closes, with an interim 100, more than the bound, late, or not at all."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import pytest

from auditrelay.delivery import http1
from auditrelay.delivery.http1 import Answer, BadAnswer, Http1Client, ReadTimeout, Target, request_head

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    return head, await reader.readexactly(length)


def client(connections: int = 4, read_timeout: float = 5.0) -> Http1Client:
    return Http1Client(
        connect_timeout=2.0,
        read_timeout=read_timeout,
        allow_private=True,
        connections=connections,
        ssl_context=None,
        user_agent="auditrelay-test",
    )


def exchange(
    handler: Handler, posts: int = 1, limit: int = 1024, **options: float
) -> tuple[list[Answer], int]:
    """`posts` POSTs one after another through one client; their answers and the number of
    connections the server saw."""
    connections = 0

    async def scenario() -> list[Answer]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            try:
                await handler(reader, writer)
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with client(read_timeout=options.get("read_timeout", 5.0)) as c:
                return [
                    await c.post(f"http://127.0.0.1:{port}/in?x=1", {"Content-Type": "a/b"}, b"{}", limit)
                    for _ in range(posts)
                ]
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(scenario()), connections


def test_a_chunked_answer_is_read_whole_and_the_connection_kept() -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
            await writer.drain()

    answers, connections = exchange(chunked, posts=3)
    assert [(a.status, a.body) for a in answers] == [(200, b"abcde")] * 3
    assert connections == 1


def test_an_answer_without_a_length_ends_when_the_server_closes() -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nX-Kind: old\r\n\r\nall of it")
        await writer.drain()

    answers, connections = exchange(until_close, posts=2)
    assert [(a.status, a.body, a.headers["x-kind"]) for a in answers] == [(200, b"all of it", "old")] * 2
    assert connections == 2, "an answer that ends with the connection leaves nothing to reuse"


def test_an_interim_answer_is_skipped_for_the_real_one() -> None:
    async def continuing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.read()

    answers, _ = exchange(continuing)
    assert (answers[0].status, answers[0].body) == (201, b"ok")


def test_an_answer_past_the_bound_is_cut_and_its_connection_not_reused() -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000)
            await writer.drain()

    answers, connections = exchange(big, posts=2, limit=1000)
    assert [(a.status, a.body) for a in answers] == [(500, b"x" * 1000)] * 2
    assert connections == 2


def test_a_server_that_stops_answering_midway_is_a_bad_answer() -> None:
    async def half(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()

    with pytest.raises(BadAnswer, match="closed in the middle of the answer"):
        exchange(half)


def test_garbage_is_a_bad_answer() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read()

    with pytest.raises(BadAnswer, match="invalid HTTP answer"):
        exchange(garbage)


def test_a_trickle_is_timed_out_only_when_it_stops() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
        for part in (b"a", b"b", b"c"):
            await asyncio.sleep(0.15)
            writer.write(part)
            await writer.drain()
        await asyncio.sleep(5)

    with pytest.raises(ReadTimeout):
        # Each byte comes within the read timeout (0.3 s); the fourth never does.
        exchange(trickle, read_timeout=0.3)


def test_an_idle_connection_past_the_idle_time_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "IDLE_SECONDS", 0.0)

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    answers, connections = exchange(keep_alive, posts=3)
    assert [a.status for a in answers] == [200] * 3 and connections == 3


def test_a_cancelled_request_closes_its_connection() -> None:
    """A pause cuts off a request in flight: its connection, whose answer may still come,
    is closed rather than handed to the next request."""
    seen: list[int] = []

    async def scenario() -> int:
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            number = connections
            try:
                await read_request(reader)
                if number == 1:
                    await asyncio.sleep(0.5)  # too late: the caller has gone
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{number}".encode())
                await writer.drain()
                await reader.read()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        async with client() as c:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await c.post(url, {}, b"{}", 100)
            second = await c.post(url, {}, b"{}", 100)
            seen.append(int(second.body))
        server.close()
        await server.wait_closed()
        return connections

    assert asyncio.run(scenario()) == 2 and seen == [2]


def test_the_request_head_carries_host_length_and_agent_and_refuses_line_breaks() -> None:
    target = Target.of("https://siem.example:8088/services/collector?channel=1")
    head = request_head(target, {"Authorization": "Splunk t", "Content-Length": "9"}, 12, "agent/1")
    assert head == (
        b"POST /services/collector?channel=1 HTTP/1.1\r\nHost: siem.example:8088\r\n"
        b"Authorization: Splunk t\r\nUser-Agent: agent/1\r\nContent-Length: 12\r\n\r\n"
    )
    assert Target.of("http://[::1]/").host_header == "[::1]"
    assert Target.of("https://siem.example:443").path == "/"
    with pytest.raises(ValueError, match="line break"):
        request_head(target, {"X-Bad": "a\r\nInjected: 1"}, 0, "agent/1")
    with pytest.raises(ValueError, match="not a valid HTTP token"):
        request_head(target, {"Bad Name": "x"}, 0, "agent/1")
