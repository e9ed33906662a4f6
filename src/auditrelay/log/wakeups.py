"""Wake the delivery loops the moment new events commit.

Within a process, ingest calls `notify()` after its transaction commits. Across processes
(PostgreSQL), `PostgresListener` relays `NOTIFY auditrelay_events` into `notify()`. Loops
still poll on a slow timer as a safety net, so a lost wake-up costs latency, never events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "auditrelay_events"


class Wakeups:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Event] = set()

    def subscribe(self) -> asyncio.Event:
        flag = asyncio.Event()
        self._subscribers.add(flag)
        return flag

    def unsubscribe(self, flag: asyncio.Event) -> None:
        self._subscribers.discard(flag)

    def notify(self) -> None:
        for flag in self._subscribers:
            flag.set()


class PostgresListener:
    """A thread LISTENing on a dedicated connection, forwarding each notice to `Wakeups`."""

    def __init__(self, conninfo: str, wakeups: Wakeups, loop: asyncio.AbstractEventLoop) -> None:
        self._conninfo = conninfo
        self._wakeups = wakeups
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
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        # `notifies` returns after a second of silence so that `stop` is seen.
                        for _ in conn.notifies(timeout=1.0, stop_after=1000):
                            self._wake()
            except psycopg.Error as exc:
                log.warning("event notification listener lost its connection (%s); retrying", exc)
                self._stop.wait(1.0)

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._wakeups.notify)
