"""Wake the delivery loops the moment new events commit.

Within a process, ingest calls `notify()` after its transaction commits, which wakes this
process's loops and, through `relay`, the process that delivers when that is another one
(see `auditrelay.cluster`). On PostgreSQL the append itself sends `NOTIFY auditrelay_events`,
and `store.PostgresListener` in the delivering process turns it into `wake_local()`. Loops
still poll on a slow timer as a safety net, so a lost wake-up costs latency, never events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


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
