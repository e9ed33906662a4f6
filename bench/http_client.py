"""CPU per request of the delivery client against nginx, beside aiohttp's (when installed,
as with `pip install -e '.[dev]'`) and a bare asyncio protocol (the floor: one write, a
search for the end of the answer).

    .venv/bin/python bench/http_client.py [--requests 5000] [--concurrency 1 16]

Each client POSTs the same ~500-byte JSON body over kept-alive connections to Debian's
nginx on loopback (installed by the harness when missing), `concurrency` requests at a
time, and the figure is the user + system CPU of this process over the run divided by the
requests; nginx's own CPU is not counted. Wall-clock rates are printed too, but on a
shared machine the CPU figure is the one to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "bench"), str(ROOT)]

from receivers import Nginx  # noqa: E402 - needs the path above
from service import free_port  # noqa: E402

from auditrelay.delivery.sender import new_client  # noqa: E402

BODY = b'{"id":"00000000-0000-0000-0000-000000000000","action":"user.login","pad":"' + b"x" * 420 + b'"}'
HEADERS = {"Content-Type": "application/json"}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(post: Callable[[], Awaitable[int]], requests: int, concurrency: int) -> tuple[float, float]:
    left = iter(range(requests))

    async def worker() -> None:
        for _ in left:
            status = await post()
            assert status == 200, status

    started_cpu, started = cpu(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return cpu() - started_cpu, time.monotonic() - started


async def ours(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    async with new_client(5, 5, True, concurrency) as client:

        async def post() -> int:
            return (await client.post(url, HEADERS, BODY, 64 * 1024)).status

        return await run(post, requests, concurrency)


async def with_aiohttp(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> int:
            async with session.post(url, data=BODY, headers=HEADERS) as answer:
                await answer.read()
                return answer.status

        return await run(post, requests, concurrency)


class _Bare(asyncio.Protocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        length = (
            int(head[at + 15 : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None]) if at >= 0 else 0
        )
        if len(self.buffer) >= end + 4 + length and self.waiter is not None:
            self.buffer = self.buffer[end + 4 + length :]
            self.waiter.set_result(None)


async def bare(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    head = (
        f"POST /e HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode()
    connections = [await loop.create_connection(_Bare, host, int(port)) for _ in range(concurrency)]
    free = list(connections)

    async def post() -> int:
        transport, protocol = free.pop()
        protocol.waiter = loop.create_future()
        transport.write(head + BODY)
        await protocol.waiter
        free.append((transport, protocol))
        return 200

    try:
        return await run(post, requests, concurrency)
    finally:
        for transport, _ in connections:
            transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    clients: dict[str, Callable[[str, int, int], Awaitable[tuple[float, float]]]] = {
        "auditrelay (delivery.http1)": ours,
        "bare asyncio protocol": bare,
    }
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print("aiohttp is not installed: its row is left out", file=sys.stderr)
    else:
        clients["aiohttp"] = with_aiohttp
    nginx = Nginx(free_port(), free_port())
    try:
        print("| client | in flight | requests/s | CPU-µs per request |")
        print("|---|---|---|---|")
        for concurrency in args.concurrency:
            for name, client in clients.items():
                asyncio.run(client(nginx.url + "/e", 200, concurrency))  # warm up
                spent, seconds = asyncio.run(client(nginx.url + "/e", args.requests, concurrency))
                print(
                    f"| {name} | {concurrency} | {args.requests / seconds:,.0f} | "
                    f"{spent * 1e6 / args.requests:.1f} |",
                    flush=True,
                )
    finally:
        nginx.close()


if __name__ == "__main__":
    main()
