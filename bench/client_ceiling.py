"""How many sequential keep-alive POSTs a second an HTTP client itself manages here: the
ceiling of one-request-per-event delivery, whatever the service does around it. It is why
the delivery sender moved from httpx to aiohttp.

    .venv/bin/python bench/client_ceiling.py
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import httpx

REQUESTS = 3000


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def with_httpx(url: str, body: bytes) -> float:
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for _ in range(REQUESTS):
            await client.post(url, content=body)
        return REQUESTS / (time.perf_counter() - started)


async def with_aiohttp(url: str, body: bytes) -> float:
    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        for _ in range(REQUESTS):
            async with session.post(url, data=body) as response:
                await response.read()
        return REQUESTS / (time.perf_counter() - started)


async def main() -> None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    body = b'{"event":"' + b"x" * 600 + b'"}'
    for name, client in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
        rate = await client(url, body)
        print(f"{name} sequential POSTs (receiver in the same process): {rate:,.0f} requests/s")
    await asyncio.sleep(0.1)  # let the server side see the clients close before closing it
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
