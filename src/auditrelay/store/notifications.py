"""PostgreSQL notifications: the channels, a listener thread, and sending one.

The append sends `NOTIFY auditrelay_events` in its own statement (see `event_log`); the
delivering process LISTENs here and turns each notice into a local wake-up. A destination
change anywhere sends `NOTIFY auditrelay_destinations`, so that process resyncs at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Mapping

from sqlalchemy import Connection

log = logging.getLogger(__name__)

CHANNEL = "auditrelay_events"
#: Notified after a destination changed, so the delivering process resyncs at once.
DESTINATIONS_CHANNEL = "auditrelay_destinations"


def notify_destinations_changed(conn: Connection) -> None:
    conn.exec_driver_sql(f"SELECT pg_notify('{DESTINATIONS_CHANNEL}', '')")


class PostgresListener:
    """A thread LISTENing on a dedicated connection, calling each channel's handler on `loop`."""

    def __init__(
        self, conninfo: str, handlers: Mapping[str, Callable[[], None]], loop: asyncio.AbstractEventLoop
    ) -> None:
        #: Set once the thread LISTENs on every channel (tests wait for it).
        self.ready = threading.Event()
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
        import psycopg  # here, not with the module: a service on SQLite never loads it

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    for channel in self._handlers:
                        conn.execute(f"LISTEN {channel}")
                    self.ready.set()
                    # Whatever was notified while not listening is unknown: handle every channel.
                    for channel in self._handlers:
                        self._call(channel)
                    while not self._stop.is_set():
                        # `notifies` returns after a second of silence so that `stop` is seen.
                        for notice in conn.notifies(timeout=1.0, stop_after=1000):
                            self._call(notice.channel)
            except psycopg.Error as exc:
                self.ready.clear()
                log.warning("event notification listener lost its connection (%s); retrying", exc)
                self._stop.wait(1.0)

    def _call(self, channel: str) -> None:
        handler = self._handlers.get(channel)
        if handler is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(handler)
