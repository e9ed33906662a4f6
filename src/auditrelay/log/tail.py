"""The newest events of the log, read from the database once per process for every loop.

With many destinations caught up at the head, each new commit would otherwise cost one
database read per destination. Here the first loop to need new events reads them (in
chunks) under a lock; the others find them in memory. A loop far behind the window (a
backlog) reads the database directly. Memory is bounded by bytes as well as by count: the
window keeps at most `capacity` events and about `capacity_bytes` of them, each refresh
reads at most `chunk` events and about `chunk_bytes`, and every answer holds at most the
`max_bytes` its caller asked for (plus the one event that reaches it). The byte bounds are
sized to what loops at the head need, not more: a refresh reads about one loop read (8 MiB,
`DestinationKind.read_bytes`' least), the window keeps two of them, and a loop further
behind reads the database itself. Events a loop has read stay alive in its requests until
their commit anyway; a larger window only kept more of those already sent in memory (with
1 MiB events, 64 MiB of them in the delivering process of a large backlog's drain).

Sequence numbers are gapless (see docs/event-log.md), so the window is a plain list in
which the event with `seq = s` sits at index `s - first`.
"""

from __future__ import annotations

import asyncio

from auditrelay.model import StoredEvent
from auditrelay.store import Database, read_after

MiB = 1024 * 1024


class LogTail:
    def __init__(
        self,
        db: Database,
        capacity: int = 20_000,
        chunk: int = 5_000,
        capacity_bytes: int = 16 * MiB,
        chunk_bytes: int = 8 * MiB,
    ) -> None:
        self._db = db
        self._capacity = capacity
        self._chunk = chunk
        self._capacity_bytes = capacity_bytes
        self._chunk_bytes = chunk_bytes
        self._events: list[StoredEvent] = []
        self._bytes = 0
        self._lock = asyncio.Lock()

    @property
    def _last(self) -> int | None:
        return self._events[-1].seq if self._events else None

    async def read_after(self, cursor: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
        """The next `limit` events after `cursor` (about `max_bytes` of them at most), from
        memory when they are in the window."""
        result: list[StoredEvent] = []
        budget = max_bytes if max_bytes is not None else 1 << 62
        size = 0
        while len(result) < limit and size < budget:
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
                return await self._db.read_latest(read_after, cursor, limit, max_bytes)  # behind the window
            if not found:
                break
            if max_bytes is None:
                result += found  # no byte budget: no need to look at each event
                continue
            for event in found:
                result.append(event)
                size += len(event.body)
                if size >= budget:
                    break
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
            new = await self._db.read_latest(read_after, start, self._chunk, self._chunk_bytes)
            if not new:
                return
            if last is None or new[0].seq != last + 1:
                self._events, self._bytes = new, 0  # not adjacent to the window: start a new one
            else:
                self._events.extend(new)
            self._bytes += sum(len(e.body) for e in new)
            drop = max(0, len(self._events) - self._capacity)
            dropped = sum(len(e.body) for e in self._events[:drop])
            # By bytes too, keeping at least the newest event.
            while drop < len(self._events) - 1 and self._bytes - dropped > self._capacity_bytes:
                dropped += len(self._events[drop].body)
                drop += 1
            if drop:
                self._bytes -= dropped
                del self._events[:drop]
