"""How many sequential POSTs a second httpx itself manages here: the ceiling of one-request-
per-event delivery, whatever the service does around it.

    .venv/bin/python bench/httpx_ceiling.py
"""

from __future__ import annotations

import asyncio
import time

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


async def main() -> None:
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    body = b'{"event":"' + b"x" * 600 + b'"}'
    async with httpx.AsyncClient() as client:
        started = time.perf_counter()
        for _ in range(REQUESTS):
            await client.post(f"http://127.0.0.1:{port}/", content=body)
        rate = REQUESTS / (time.perf_counter() - started)
    await asyncio.sleep(0.1)  # let the server side see the client close before closing it
    server.close()
    await server.wait_closed()
    print(f"httpx sequential POSTs (receiver in the same process): {rate:,.0f} requests/s")


if __name__ == "__main__":
    asyncio.run(main())
