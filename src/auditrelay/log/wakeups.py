"""Wake the delivery loops the moment new events commit.

Within a process, ingest calls `notify()` after its transaction commits, which wakes this
process's loops and, through `relay`, the process that delivers when that is another one
(see `auditrelay.cluster`). On PostgreSQL the append itself sends `NOTIFY auditrelay_events`,
and `PostgresListener` in the delivering process turns it into `wake_local()`. Loops still
poll on a slow timer as a safety net, so a lost wake-up costs latency, never events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "auditrelay_events"
#: Notified after a destination changed, so the delivering process resyncs at once.
DESTINATIONS_CHANNEL = "auditrelay_destinations"


class Wakeups:
    def __init__(self, relay: Callable[[], None] | None = None) -> None:
        self._subscribers: set[asyncio.Event] = set()
        self._relay = relay

    def subscribe(self) -> asyncio.Event:
        flag = asyncio.Event()
        self._subscribers.add(flag)
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        self._subscribers.discard(flag)

    def notify(self) -> None:
        """New events were committed by this process."""
        self.wake_local()
        if self._relay is not None:
            self._relay()

    def wake_local(self) -> None:
        for flag in self._subscribers:
            flag.set()


class PostgresListener:
    """A thread LISTENing on a dedicated connection, calling each channel's handler on `loop`."""

    def __init__(
        self, conninfo: str, handlers: Mapping[str, Callable[[], None]], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._conninfo = conninfo
        self._handlers = dict(handlers)
        self._loop = loop
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    for channel in self._handlers:
                        conn.execute(f"LISTEN {channel}")
                    # Whatever was notified while not listening is unknown: handle every channel.
                    for channel in self._handlers:
                        self._call(channel)
                    while not self._stop.is_set():
                        # `notifies` returns after a second of silence so that `stop` is seen.
                        for notice in conn.notifies(timeout=1.0, stop_after=1000):
                            self._call(notice.channel)
            except psycopg.Error as exc:
                log.warning("event notification listener lost its connection (%s); retrying", exc)
                self._stop.wait(1.0)

    def _call(self, channel: str) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(handler)
