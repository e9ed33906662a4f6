"""The group commit of ingest: concurrent requests of a process share one transaction.

Every ingest request used to commit on its own, and a commit is an fsync of the WAL
(SQLite, `synchronous=FULL`) or a WAL flush (PostgreSQL): under load the appends queue on
the log's lock and each pays its own flush. Here requests that arrive while a transaction
is being written wait for it and go together in the next one, as the cursor commits of
`delivery.ledger.CursorCommits` do. Nothing is delayed on purpose: a lone request is
written at once; under load the transactions get bigger instead of more.

Each request is still answered only once the commit holding its events is durable, and
with its own outcome: `store.store_event_group` appends the requests one after another in
the transaction, so their answers (stored, already stored, conflicts) are those they would
get one by one in that order, and a failure stores each alone so that it reaches only the
request it belongs to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from auditrelay.events import ValidEvent
from auditrelay.model import AppendResult
from auditrelay.store import AppendRequest, Database, store_event_group

#: Events one transaction holds at most: bounds how long the log's lock is held and how much
#: one failed group has to store again alone. A request larger than this goes alone.
GROUP_EVENTS = 5_000


class IngestCommits:
    """The group commit of ingest requests, shared by every request of a process."""

    def __init__(self, db: Database, group_events: int = GROUP_EVENTS) -> None:
        self._db = db
        self._group_events = group_events
        self._queue: list[tuple[AppendRequest, asyncio.Future[AppendResult]]] = []
        self._task: asyncio.Task[None] | None = None

    async def store(self, batch: Sequence[ValidEvent], org: str | None, token_id: str | None) -> AppendResult:
        """Store `batch` (as `store.store_events` does); return once it is durable."""
        done: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        self._queue.append((AppendRequest(batch, org, token_id), done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_queued(), name="ingest-commits")
        # Shielded: a request cancelled meanwhile (its client left) must not cancel the
        # transaction of the others; its events may still be stored, as a retry will find.
        return await asyncio.shield(done)

    def _next_group(self) -> list[tuple[AppendRequest, asyncio.Future[AppendResult]]]:
        size = 0
        for taken, (request, _done) in enumerate(self._queue):
            size += len(request.batch)
            if taken and size > self._group_events:
                break
        else:
            taken = len(self._queue)
        group, self._queue = self._queue[:taken], self._queue[taken:]
        return group

    async def _write_queued(self) -> None:
        while self._queue:
            group = self._next_group()
            outcomes: Sequence[AppendResult | Exception]
            try:
                outcomes = await self._db.run(store_event_group, self._db, [r for r, _ in group])
            except Exception as exc:  # the pool itself failed (shutting down): all fail alike
                outcomes = [exc] * len(group)
            for (_request, done), outcome in zip(group, outcomes, strict=True):
                if done.done():
                    continue
                if isinstance(outcome, Exception):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)
