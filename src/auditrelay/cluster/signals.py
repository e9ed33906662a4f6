"""Signals from every process to the one that delivers, on the embedded store.

On PostgreSQL, NOTIFY carries them (see `log.wakeups.PostgresListener`). SQLite has no such
thing, so the delivering process binds a UNIX datagram socket beside the database and the
others send it one byte after each commit: `EVENTS` (new events: wake the loops) or
`DESTINATIONS` (a destination changed: resync). Sending never blocks and never fails the
sender: with nobody listening, or a full queue, the signal is dropped, and the delivering
process's periodic poll (`resync_seconds`) catches up. A lost signal costs latency, never
events.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from pathlib import Path

EVENTS = b"e"
DESTINATIONS = b"d"


class SignalSender:
    def __init__(self, path: Path) -> None:
        self._path = str(path)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)

    def send(self, signal: bytes) -> None:
        with contextlib.suppress(OSError):  # nobody listening, or its queue is full
            self._socket.sendto(signal, self._path)

    def close(self) -> None:
        self._socket.close()


class _Receiving(asyncio.DatagramProtocol):
    def __init__(self, on_signal: Callable[[bytes], None]) -> None:
        self._on_signal = on_signal

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._on_signal(data)


class SignalReceiver:
    """Bound by the delivering process only (it holds the delivery lock, so no other binds)."""

    def __init__(self, path: Path, on_signal: Callable[[bytes], None]) -> None:
        self._path = path
        self._on_signal = on_signal
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)  # left by a holder that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(self._path))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Receiving(self._on_signal), sock=sock
        )

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
