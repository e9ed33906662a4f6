"""Cursor commits of many delivery loops, written together (group commit).

With a hundred destinations at the head of the log, every new commit of events makes each
loop deliver and then commit its cursor: a hundred small write transactions, each waiting
for the database's lock (SQLite) or a round trip and a WAL flush (PostgreSQL). Here the
commits that arrive while one transaction is being written wait for it and then go
together in the next one. No commit is delayed on purpose: a lone loop's commit is written
at once, exactly as before; under load the transactions simply get bigger instead of more.

Each caller still waits until its own cursor is durable, so the at-least-once reasoning
of the loop is unchanged. One failing item (a destination deleted meanwhile, say) must not
fail the others: a failed group is retried one item at a time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from auditrelay.store import Database
from auditrelay.store import delivery_rows as dr
from auditrelay.store.destination_rows import DestinationRows

log = logging.getLogger(__name__)


@dataclass
class _Commit:
    destination_id: str
    cursor: int
    delivered: int
    records: list[dr.AttemptRecord]
    trim: bool
    done: asyncio.Future[None] = field(repr=False)


class ProgressWriter:
    def __init__(self, db: Database, rows: DestinationRows) -> None:
        self._db = db
        self._rows = rows
        self._queue: list[_Commit] = []
        self._task: asyncio.Task[None] | None = None

    async def commit(
        self, destination_id: str, cursor: int, delivered: int, records: list[dr.AttemptRecord], trim: bool
    ) -> None:
        """Return once the cursor (and the delivered count and attempts) are durable."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Commit(destination_id, cursor, delivered, records, trim, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_queued(), name="progress-writer")
        await done

    async def _write_queued(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            errors: list[Exception | None]
            try:
                await self._db.run(self._write, group)
                errors = [None] * len(group)
            except Exception as exc:
                # One item alone has its answer; in a group, isolate the item that failed.
                alone = len(group) == 1
                errors = [exc] if alone else [await self._write_alone(item) for item in group]
            for item, error in zip(group, errors, strict=True):
                if item.done.done():
                    continue
                if error is None:
                    item.done.set_result(None)
                else:
                    item.done.set_exception(error)

    async def _write_alone(self, item: _Commit) -> Exception | None:
        try:
            await self._db.run(self._write, [item])
        except Exception as exc:
            return exc
        return None

    def _write(self, group: list[_Commit]) -> None:
        with self._db.write() as conn:
            # One order for every transaction: no lock-order deadlocks between them.
            for item in sorted(group, key=lambda c: c.destination_id):
                self._rows.commit_progress(conn, item.destination_id, item.cursor, item.delivered)
                dr.record_attempts(conn, item.destination_id, item.records, trim=item.trim)
