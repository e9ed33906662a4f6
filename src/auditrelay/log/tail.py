"""The newest events of the log, read from the database once per process for every loop.

With many destinations caught up at the head, each new commit would otherwise cost one
database read per destination. Here the first loop to need new events reads them (in
chunks) under a lock; the others find them in memory. A loop far behind the window (a
backlog) reads the database directly, so memory stays bounded by `capacity` events.

Sequence numbers are gapless (see docs/event-log.md), so the window is a plain list in
which the event with `seq = s` sits at index `s - first`.
"""

from __future__ import annotations

import asyncio

from auditrelay.model import StoredEvent
from auditrelay.store import Database, read_after


class LogTail:
    def __init__(self, db: Database, capacity: int = 20_000, chunk: int = 5_000) -> None:
        self._db = db
        self._capacity = capacity
        self._chunk = chunk
        self._events: list[StoredEvent] = []
        self._lock = asyncio.Lock()

    @property
    def _last(self) -> int | None:
        return self._events[-1].seq if self._events else None

    async def read_after(self, cursor: int, limit: int) -> list[StoredEvent]:
        """The next `limit` events after `cursor`, from memory when they are in the window."""
        result: list[StoredEvent] = []
        while len(result) < limit:
            position = result[-1].seq if result else cursor
            last = self._last
            if last is None or position >= last:
                await self._refresh(position)
                last = self._last
                if last is None or position >= last:
                    break  # nothing newer is stored
            found = self._from_window(position, limit - len(result))
            if found is None:
                if result:
                    break
                return await self._db.read(read_after, cursor, limit)  # behind the window
            if not found:
                break
            result += found
        return result

    def _from_window(self, cursor: int, limit: int) -> list[StoredEvent] | None:
        if not self._events:
            return None
        first = self._events[0].seq
        start = cursor + 1 - first
        if start < 0 or start > len(self._events):
            return None
        found = self._events[start : start + limit]
        # Defensive: the window must be contiguous from `cursor`; otherwise ask the database.
        if found and found[0].seq != cursor + 1:
            return None
        return found

    async def _refresh(self, cursor: int) -> None:
        async with self._lock:
            last = self._last
            if last is not None and cursor < last:
                return  # another loop read the new events while this one waited
            # Extend the window when the cursor is at (or just past) its end; a cursor far
            # ahead of a stale window starts a new one where it is.
            start = last if last is not None and last <= cursor <= last + self._chunk else cursor
            new = await self._db.read(read_after, start, self._chunk)
            if not new:
                return
            if last is None or new[0].seq != last + 1:
                self._events = new  # not adjacent to the window: start a new one
            else:
                self._events.extend(new)
            if len(self._events) > self._capacity:
                del self._events[: len(self._events) - self._capacity]
