"""The ledger: everything a delivery loop writes down, and the only way it touches the store.

The loop works on its own state (what is sent, what is accepted) and tells the ledger what
happened; the ledger owns the durable side: the cursor and delivered count, dead letters,
failure and health states, replay progress, and the capped attempt history with its
trimming. `StoreLedger` writes to the database; `delivery.testing.InMemoryLedger` keeps
the same things in memory for the loop's unit tests (procrastinate's connector pattern).

Cursor commits of many loops are written together (`CursorCommits`, a group commit): with
a hundred destinations at the head of the log, every new commit of events makes each loop
deliver and commit its cursor, a hundred small write transactions, each waiting for the
database's lock (SQLite) or a round trip and a WAL flush (PostgreSQL). Commits that arrive
while one transaction is being written wait for it and go together in the next one. No
commit is delayed on purpose: a lone loop's commit is written at once; under load the
transactions get bigger instead of more. Each caller still waits until its own cursor is
durable, so the at-least-once reasoning of the loop is unchanged. One failing item (a
destination deleted meanwhile, say) must not fail the others: a failed group is retried
one item at a time.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Protocol

from auditrelay.model import (
    AttemptRecord,
    BreakerState,
    DeliveryState,
    InFlight,
    ReplayJob,
    StateChange,
    StoredEvent,
)
from auditrelay.store import (
    ATTEMPT_HISTORY,
    Database,
    Progress,
    commit_progress_group,
    dead_letter_event,
    pending_replay,
    read_status,
    record_failed_attempt,
    record_recovered,
    record_replay_progress,
    record_slow,
)

log = logging.getLogger(__name__)

#: Trim the attempt history every this many writes (of any kind) of one destination.
TRIM_EVERY = 25


class Ledger(Protocol):
    """What a delivery loop writes down; each method returns once it is durable."""

    def note(self, record: AttemptRecord) -> None:
        """Keep an attempt for the history; it is written with the next write."""

    async def resume_point(self) -> tuple[int, BreakerState, DeliveryState]:
        """Where a (re)starting loop stands: the committed cursor (every event up to it is
        delivered or set aside), the breaker's state and the destination's state as last
        written."""

    async def commit(
        self,
        cursor: int,
        delivered: int,
        in_flight: InFlight | None = None,
        change: StateChange | None = None,
        still_slow: bool = False,
    ) -> None:
        """Everything up to `cursor` is accepted; `delivered` more events reached it;
        `in_flight` is what the loop has in flight now; `change` the change of state the
        commit makes (written with it as an audit event); `still_slow`: an older request
        than those accepted is still past the slow threshold, so the state stays `slow`.

        Every method taking a `change` writes it so, in the same transaction."""

    async def dead_letter(
        self,
        event: StoredEvent,
        event_id: str,
        attempts: int,
        http_status: int | None,
        error: str,
        delivered: int,
        breaker: BreakerState,
        change: StateChange | None = None,
    ) -> None:
        """Set `event` aside and move the cursor to it, in one transaction (a crash cannot
        dead-letter it twice); `delivered` events before it were accepted since the last
        commit; `breaker` is the breaker's state with this dead letter counted."""

    async def failed(
        self,
        state: DeliveryState,
        http_status: int | None,
        message: str,
        failures: int,
        next_retry_ms: int,
        breaker: BreakerState | None = None,
        in_flight: InFlight | None = None,
        change: StateChange | None = None,
    ) -> None:
        """Record a failed attempt: the state, the last error, when the next try comes (and
        the breaker's state while it holds the stream)."""

    async def recovered(self, change: StateChange | None = None) -> None:
        """An attempt was accepted after failures: healthy again."""

    async def slow(self, in_flight: InFlight, change: StateChange | None = None) -> None:
        """A request has been in flight longer than the slow threshold."""

    async def pending_replay(self) -> ReplayJob | None:
        """The oldest replay job still to run for this destination, if any."""

    async def replay_progress(self, job_id: int, cursor: int, delivered: int, done: bool) -> None:
        """A replay job has sent everything up to `cursor`."""


@dataclass
class _Commit:
    destination_id: str
    cursor: int
    delivered: int
    records: list[AttemptRecord]
    trim: bool
    in_flight: InFlight | None
    change: StateChange | None
    still_slow: bool
    done: asyncio.Future[None] = field(repr=False)


class CursorCommits:
    """The group commit of cursors, shared by every loop of a process."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._queue: list[_Commit] = []
        self._task: asyncio.Task[None] | None = None

    async def commit(
        self,
        destination_id: str,
        cursor: int,
        delivered: int,
        records: list[AttemptRecord],
        trim: bool,
        in_flight: InFlight | None = None,
        change: StateChange | None = None,
        still_slow: bool = False,
    ) -> None:
        """Return once the cursor (and the delivered count and attempts) are durable."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(
            _Commit(destination_id, cursor, delivered, records, trim, in_flight, change, still_slow, done)
        )
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_queued(), name="cursor-commits")
        await done

    async def _write_queued(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            errors: list[Exception | None]
            try:
                await self._db.write(commit_progress_group, _progress(group))
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
            await self._db.write(commit_progress_group, _progress([item]))
        except Exception as exc:
            return exc
        return None


def _progress(group: list[_Commit]) -> list[Progress]:
    return [
        Progress(
            c.destination_id, c.cursor, c.delivered, c.records, c.trim, c.in_flight, c.change, c.still_slow
        )
        for c in group
    ]


class StoreLedger:
    """The ledger of one destination, in the database."""

    def __init__(self, db: Database, destination_id: str, commits: CursorCommits) -> None:
        self._db = db
        self._id = destination_id
        self._commits = commits
        self._attempts: list[AttemptRecord] = []
        self._writes = 0

    def note(self, record: AttemptRecord) -> None:
        self._attempts.append(record)
        # Bounded even if writes are rare (a long batch of per-event requests).
        if len(self._attempts) > ATTEMPT_HISTORY:
            del self._attempts[:-ATTEMPT_HISTORY]

    def _take(self) -> tuple[list[AttemptRecord], bool]:
        """The attempts noted since the last write, and whether this write trims the history."""
        records, self._attempts = self._attempts, []
        self._writes += 1
        return records, self._writes % TRIM_EVERY == 0

    async def resume_point(self) -> tuple[int, BreakerState, DeliveryState]:
        status = await self._db.read(read_status, self._id)
        if status is None:
            raise LookupError(f"destination {self._id} has no status row")
        return status.cursor, BreakerState(status.dead_letters_in_a_row, status.held_since_ms), status.state

    async def commit(
        self,
        cursor: int,
        delivered: int,
        in_flight: InFlight | None = None,
        change: StateChange | None = None,
        still_slow: bool = False,
    ) -> None:
        records, trim = self._take()
        # Shielded: a stop that cancels the loop mid-commit must not cancel the write itself.
        await asyncio.shield(
            self._commits.commit(self._id, cursor, delivered, records, trim, in_flight, change, still_slow)
        )

    async def dead_letter(
        self,
        event: StoredEvent,
        event_id: str,
        attempts: int,
        http_status: int | None,
        error: str,
        delivered: int,
        breaker: BreakerState,
        change: StateChange | None = None,
    ) -> None:
        records, trim = self._take()
        await self._db.write(
            dead_letter_event,
            self._id,
            event,
            event_id,
            attempts,
            http_status,
            error,
            delivered,
            breaker,
            records,
            trim,
            change,
        )

    async def failed(
        self,
        state: DeliveryState,
        http_status: int | None,
        message: str,
        failures: int,
        next_retry_ms: int,
        breaker: BreakerState | None = None,
        in_flight: InFlight | None = None,
        change: StateChange | None = None,
    ) -> None:
        records, trim = self._take()
        await self._db.write(
            record_failed_attempt,
            self._id,
            state,
            http_status,
            message,
            failures,
            next_retry_ms,
            breaker,
            records,
            trim,
            in_flight,
            change,
        )

    async def recovered(self, change: StateChange | None = None) -> None:
        await self._db.write(record_recovered, self._id, change)

    async def slow(self, in_flight: InFlight, change: StateChange | None = None) -> None:
        await self._db.write(record_slow, self._id, in_flight, change)

    async def pending_replay(self) -> ReplayJob | None:
        return await self._db.read(pending_replay, self._id)

    async def replay_progress(self, job_id: int, cursor: int, delivered: int, done: bool) -> None:
        records, trim = self._take()
        await self._db.write(record_replay_progress, self._id, job_id, cursor, delivered, done, records, trim)
