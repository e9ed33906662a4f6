"""In-memory stand-ins for the loop's collaborators, for unit tests (and benchmarks).

`InMemoryLedger` keeps what `StoreLedger` writes to the database, with the same rules: the
cursor only moves forward, accepted deliveries make the destination healthy, the history is
trimmed to its cap every `TRIM_EVERY` writes, and texts are cut as the columns cut them.
`ListSource` serves a list of events as the log; `ScriptedSender` answers requests from a
function, recording each one. Like procrastinate's `InMemoryConnector`, they let the
delivery loop run in milliseconds, without a database, a network or a subprocess.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from auditrelay.delivery.ledger import TRIM_EVERY
from auditrelay.delivery.sender import Attempt
from auditrelay.destinations import OutgoingRequest, Verdict
from auditrelay.model import (
    AttemptRecord,
    BreakerState,
    DeliveryState,
    InFlight,
    ReplayJob,
    ReplayState,
    StateChange,
    StoredEvent,
)
from auditrelay.security import UnsafeUrl
from auditrelay.store import ATTEMPT_HISTORY


@dataclass
class InMemoryDeadLetter:
    seq: int
    event_id: str
    body: bytes
    attempts: int
    http_status: int | None
    error: str


@dataclass
class InMemoryLedger:
    cursor_at: int = 0
    delivered_total: int = 0
    state: DeliveryState = DeliveryState.PENDING
    last_error: str | None = None
    last_error_status: int | None = None
    last_error_at_ms: int | None = None
    last_success_at_ms: int | None = None
    consecutive_failures: int = 0
    next_retry_ms: int | None = None
    dead_letters: list[InMemoryDeadLetter] = field(default_factory=list)
    #: Written attempts, oldest first, at most `ATTEMPT_HISTORY`.
    attempts: list[AttemptRecord] = field(default_factory=list)
    replays: list[ReplayJob] = field(default_factory=list)
    breaker_state: BreakerState = field(default_factory=BreakerState)
    #: Every cursor committed, in order (to see when the cursor moved).
    commits: list[int] = field(default_factory=list)
    #: Every state written by a failure, in order.
    failures: list[tuple[DeliveryState, str]] = field(default_factory=list)
    #: Every change of state written (each an audit event in the store), in order.
    changes: list[StateChange] = field(default_factory=list)
    in_flight: InFlight = field(default_factory=InFlight)
    _noted: list[AttemptRecord] = field(default_factory=list)
    _writes: int = 0
    #: Set each time something is written: tests wait on it instead of sleeping.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, record: AttemptRecord) -> None:
        self._noted.append(record)

    def _flush(self) -> None:
        # As `StoreLedger`: the noted attempts go with every write, errors cut as the column
        # cuts them, and the history is trimmed every TRIM_EVERY writes (so it may exceed
        # ATTEMPT_HISTORY in between, as the table does).
        self.attempts.extend(replace(r, error=r.error[:2000] if r.error else None) for r in self._noted)
        self._noted = []
        self._writes += 1
        if self._writes % TRIM_EVERY == 0:
            del self.attempts[:-ATTEMPT_HISTORY]
        self.changed.set()

    def _change(self, change: StateChange | None) -> None:
        if change is not None:
            self.changes.append(change)

    async def resume_point(self) -> tuple[int, BreakerState, DeliveryState]:
        return self.cursor_at, self.breaker_state, self.state

    async def commit(
        self,
        cursor: int,
        delivered: int,
        in_flight: InFlight | None = None,
        change: StateChange | None = None,
        still_slow: bool = False,
    ) -> None:
        self._change(change)
        if cursor > self.cursor_at:  # strictly forward, as the store's update is
            if in_flight is not None:
                self.in_flight = in_flight
            self.cursor_at = cursor
            self.commits.append(cursor)
            if delivered:
                self.delivered_total += delivered
                self.last_success_at_ms = int(time.time() * 1000)
                self.breaker_state = BreakerState()
                self.state = DeliveryState.SLOW if still_slow else DeliveryState.HEALTHY
                self.consecutive_failures = 0
                self.next_retry_ms = None
        self._flush()

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
        self._change(change)
        letter = InMemoryDeadLetter(event.seq, event_id, event.body, attempts, http_status, error[:4000])
        self.dead_letters.append(letter)
        await self.commit(event.seq, delivered)
        self.breaker_state = breaker
        # As the store: the last error says the event was set aside.
        aside = f"event {event_id} (seq {event.seq}) refused {attempts} times and set aside"
        self.last_error = f"{aside} as a dead letter: {error}"[:2000]
        self.last_error_status = http_status
        self.last_error_at_ms = int(time.time() * 1000)

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
        self._change(change)
        if in_flight is not None:
            self.in_flight = in_flight
        if breaker is not None:
            self.breaker_state = breaker
        self.state = state
        self.last_error = message[:2000]
        self.last_error_status = http_status
        self.last_error_at_ms = int(time.time() * 1000)
        self.consecutive_failures = failures
        self.next_retry_ms = next_retry_ms
        self.failures.append((state, message))
        self._flush()

    async def slow(self, in_flight: InFlight, change: StateChange | None = None) -> None:
        self._change(change)
        self.state = DeliveryState.SLOW
        self.in_flight = in_flight
        self.changed.set()

    async def recovered(self, change: StateChange | None = None) -> None:
        self._change(change)
        self.state = DeliveryState.HEALTHY
        self.consecutive_failures = 0
        self.next_retry_ms = None
        self.changed.set()

    def add_replay(self, destination_id: str, from_seq: int, to_seq: int) -> ReplayJob:
        job = ReplayJob(
            len(self.replays) + 1,
            destination_id,
            from_seq,
            to_seq,
            from_seq - 1,
            0,
            ReplayState.PENDING,
            0,
            None,
        )
        self.replays.append(job)
        return job

    async def pending_replay(self) -> ReplayJob | None:
        return next((j for j in self.replays if j.state is not ReplayState.DONE), None)

    async def replay_progress(self, job_id: int, cursor: int, delivered: int, done: bool) -> None:
        for index, job in enumerate(self.replays):
            if job.id == job_id:
                self.replays[index] = ReplayJob(
                    job.id,
                    job.destination_id,
                    job.from_seq,
                    job.to_seq,
                    cursor,
                    job.delivered + delivered,
                    ReplayState.DONE if done else ReplayState.RUNNING,
                    job.created_at_ms,
                    None,
                )
        self._flush()


class ListSource:
    """The log as a list of events with gapless sequence numbers from 1."""

    def __init__(self, events: list[StoredEvent] | None = None) -> None:
        self.events: list[StoredEvent] = list(events or [])

    async def read_after(self, cursor: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        size = 0
        for event in self.events:
            if event.seq <= cursor:
                continue
            if len(found) >= limit or (max_bytes is not None and size >= max_bytes):
                break
            found.append(event)
            size += len(event.body)
        return found


Answer = Callable[[OutgoingRequest], Awaitable[Attempt] | Attempt]


class ScriptedSender:
    """A sender answering each request with `answer(request)`; records every request sent."""

    def __init__(self, answer: Answer, refuse_url: UnsafeUrl | None = None) -> None:
        self.answer = answer
        self.sent: list[OutgoingRequest] = []
        self.refuse_url = refuse_url

    async def __call__(self, request: OutgoingRequest) -> Attempt:
        self.sent.append(request)
        result = self.answer(request)
        if isinstance(result, Attempt):
            return result
        return await result

    async def check_destination(self) -> None:
        if self.refuse_url is not None:
            raise self.refuse_url


def answered(verdict: Verdict, status: int | None = 200, answer: bytes = b"") -> Attempt:
    """An `Attempt` as the real sender would return it for an answer of `status`."""
    return Attempt(verdict, status, 1.0, answer)
