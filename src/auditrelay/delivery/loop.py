"""The delivery loop of one destination: read after the cursor, filter, render, send, commit.

The cursor moves only after the destination accepted everything up to it (or an event was
set aside as a dead letter), so a crash at any point re-sends at most what was in flight
since the last commit (at-least-once), in log order. Each loop is an asyncio task with its
own sender (its own connection pool): a slow or hanging destination only ever awaits, it
never holds up another loop.

The loop carries out decisions; it makes none of its own. What follows an attempt is
`policy.decide`; what is written down is the `Ledger`'s; what goes on the wire is the
kind's and the `Sender`'s. All three are injected, so the loop's rules are unit-tested with
an in-memory ledger and a fake sender (`tests/delivery/test_loop.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from auditrelay.delivery.ledger import Ledger
from auditrelay.delivery.policy import Action, Breaker, RetryPolicy, decide, retry_delay
from auditrelay.delivery.sender import Attempt, Sender
from auditrelay.destinations import DestinationKind, EventFilter, Outcome, OutgoingRequest
from auditrelay.log import Wakeups
from auditrelay.metrics import DELIVERY_FAILURES, EVENTS_DEAD_LETTERED, EVENTS_DELIVERED
from auditrelay.model import AttemptRecord, BreakerState, DeliveryState, Destination, StoredEvent
from auditrelay.security import UnsafeUrl

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """Where the loop reads the log (`log.LogTail` in the service)."""

    async def read_after(self, cursor: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
        """At most `limit` events after `cursor`, and about `max_bytes` of them."""


class _Stopping(Exception):
    """Raised inside the loop once a stop was asked for, to unwind to the final commit."""


class DeliveryLoop:
    def __init__(
        self,
        destination: Destination,
        kind: DestinationKind,
        sender: Sender,
        ledger: Ledger,
        source: EventSource,
        wakeups: Wakeups,
        policy: RetryPolicy,
        *,
        commit_interval: float = 1.0,
        resync_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.destination = destination
        self.kind = kind
        self._sender = sender
        self._ledger = ledger
        self._source = source
        self._wakeups = wakeups
        self._policy = policy
        self._commit_interval = commit_interval
        self._resync_seconds = resync_seconds
        self._clock = clock
        #: Wall-clock seconds, for the breaker's hold (its start is kept across restarts).
        self._wall = wall
        self._rng = rng
        self._filter = EventFilter(destination.org, destination.event_types, destination.namespaces)
        self._read_limit = kind.read_limit(destination)
        self._read_bytes = kind.read_bytes(destination)
        self._breaker = Breaker(policy)
        self._failures = 0
        self._committed = -1
        self._delivered_through = -1
        self._delivered_uncommitted = 0
        self._replay_delivered = 0
        self._next_replay_check = 0.0
        self._last_commit = clock()
        self._stop = asyncio.Event()
        self._retry = asyncio.Event()

    @property
    def version(self) -> int:
        return self.destination.version

    def request_stop(self) -> None:
        """Finish the request in flight, commit, and end (the supervisor bounds the wait)."""
        self._stop.set()

    def retry_now(self) -> None:
        """An admin's "Retry now": end the wait before the next attempt at once, start the
        backoff over, and end the breaker's hold. A request in flight is not disturbed."""
        self._retry.set()

    async def run(self) -> None:
        """Deliver until stopped; unexpected errors restart the loop after a pause."""
        while not self._stop.is_set():
            try:
                await self._deliver_forever()
            except _Stopping:
                await self._commit_partial()
                return
            except asyncio.CancelledError:
                await self._commit_partial()
                raise
            except Exception as exc:  # a bug or a database outage must not end delivery for good
                log.exception("delivery loop of destination %s failed; restarting", self.destination.id)
                # Keep what the destination already accepted, or the restart re-sends it.
                await self._commit_partial()
                self._failures += 1
                delay = self._backoff()
                with contextlib.suppress(Exception):
                    await self._record_failure(DeliveryState.FAILING, None, f"internal error: {exc}", delay)
                with contextlib.suppress(_Stopping):
                    await self._pause(delay)

    async def _deliver_forever(self) -> None:
        # One read: the cursor, and the breaker (a hold goes on across restarts; a retry
        # asked meanwhile ended it in the store).
        cursor, breaker = await self._ledger.resume_point()
        self._breaker = Breaker(self._policy, breaker)
        self._committed = self._delivered_through = cursor
        self._delivered_uncommitted = 0
        flag = self._wakeups.subscribe()
        try:
            await self._check_destination()
            linger = self.destination.batch.linger_ms / 1000
            while not self._stop.is_set():
                flag.clear()
                replaying = await self._replay_step()
                batch = await self._source.read_after(cursor, self._read_limit, self._read_bytes)
                if not batch:
                    if not replaying:
                        await self._wait_for_events(flag)
                    continue
                size = sum(len(e.body) for e in batch)
                if linger and len(batch) < self._read_limit and size < self._read_bytes:
                    # A short linger lets a burst fill one request instead of many.
                    await asyncio.sleep(linger)
                    batch += await self._source.read_after(
                        batch[-1].seq, self._read_limit - len(batch), self._read_bytes - size
                    )
                await self._deliver_events([e for e in batch if self._filter.matches(e)], live=True)
                cursor = batch[-1].seq
                await self._commit(cursor)
        finally:
            self._wakeups.unsubscribe(flag)

    # -- sending ------------------------------------------------------------------------

    async def _deliver_events(self, events: Sequence[StoredEvent], live: bool) -> None:
        for request in self.kind.requests(self.destination, events):
            if self._stop.is_set():
                raise _Stopping
            await self._deliver_request(request, live)
            if live:
                self._delivered_through = request.events[-1].seq
                if self._clock() - self._last_commit > self._commit_interval:
                    # A long batch of many requests: keep what is delivered, so a crash
                    # re-sends at most about a second's worth.
                    await self._commit(self._delivered_through)

    async def _deliver_request(self, request: OutgoingRequest, live: bool) -> None:
        """Send until accepted, carrying out what the policy decides after each attempt."""
        rejections = 0
        while True:
            result = await self._sender(request)
            self._note(request, result, live)
            held = result.outcome is Outcome.REJECTED and live and self._breaker.holds(self._wall())
            decision = decide(
                result.verdict,
                events=len(request.events),
                rejections=rejections,
                failures=self._failures,
                replay=not live,
                held=held,
                policy=self._policy,
                rng=self._rng,
            )
            if decision.action is Action.DONE:
                await self._accepted(request, live)
                return
            DELIVERY_FAILURES.labels(self.destination.id, result.outcome.value).inc()
            if decision.action is Action.SKIP:
                # A replay re-sends what the live stream already handled: a refusal now (a
                # SIEM refusing duplicates, say) is in the history, and the replay moves on.
                return
            if decision.action is Action.SPLIT:
                # Find the refused events: each half is rendered and sent on its own.
                half = len(request.events) // 2
                await self._deliver_events(request.events[:half], live)
                await self._deliver_events(request.events[half:], live)
                return
            if decision.action is Action.DEAD_LETTER:
                await self._dead_letter(request.events[0], rejections + 1, result)
                return
            if result.outcome is Outcome.REJECTED and not held:
                rejections += 1
            self._failures += 1
            log.warning(
                "destination %s (%s): %s; retry %d in %.1f s",
                self.destination.name,
                self.destination.id,
                decision.message,
                self._failures,
                decision.delay,
            )
            assert decision.state is not None
            await self._record_failure(
                decision.state,
                result.status,
                decision.message,
                decision.delay,
                self._breaker.state if held else None,
            )
            await self._pause(decision.delay)

    async def _accepted(self, request: OutgoingRequest, live: bool) -> None:
        if live:
            EVENTS_DELIVERED.labels(self.destination.id).inc(len(request.events))
            self._delivered_uncommitted += len(request.events)
        else:
            self._replay_delivered += len(request.events)
        self._breaker.accepted()
        if self._failures:
            self._failures = 0
            await self._ledger.recovered()

    async def _dead_letter(self, event: StoredEvent, attempts: int, result: Attempt) -> None:
        event_id = str(orjson.loads(event.body).get("id", ""))
        answer = result.answer[:2000].decode("utf-8", "replace")
        error = result.verdict.message + (
            f" | answer: {answer}" if answer and answer not in result.verdict.message else ""
        )
        self._breaker.dead_lettered()
        EVENTS_DEAD_LETTERED.labels(self.destination.id).inc()
        log.warning(
            "destination %s (%s): event %s (seq %d) refused %d times; set aside as a dead letter: %s",
            self.destination.name,
            self.destination.id,
            event_id,
            event.seq,
            attempts,
            result.verdict.message,
        )
        delivered = self._delivered_uncommitted
        await self._ledger.dead_letter(
            event, event_id, attempts, result.status, error, delivered, self._breaker.state
        )
        self._committed = self._delivered_through = event.seq
        self._delivered_uncommitted = 0
        self._last_commit = self._clock()

    def _note(self, request: OutgoingRequest, result: Attempt, live: bool) -> None:
        self._ledger.note(
            AttemptRecord(
                at_ms=int(time.time() * 1000),
                events=len(request.events),
                bytes=len(request.content),
                http_status=result.status,
                latency_ms=round(result.latency_ms, 2),
                outcome=result.outcome.value,
                error=None if result.delivered else result.verdict.message,
                replay=not live,
            )
        )

    # -- replay ---------------------------------------------------------------------------

    async def _replay_step(self) -> bool:
        """Send one chunk of a pending replay job, if any, without touching the live cursor.

        Chunks alternate with live batches, so a long replay never stalls the live stream;
        returns True while the job has more to send.
        """
        now = self._clock()
        if now < self._next_replay_check:
            return False
        job = await self._ledger.pending_replay()
        if job is None:
            self._next_replay_check = now + self._resync_seconds
            return False
        read = await self._source.read_after(job.cursor, self._read_limit, self._read_bytes)
        chunk = [e for e in read if e.seq <= job.to_seq]
        self._replay_delivered = 0
        if chunk:
            await self._deliver_events([e for e in chunk if self._filter.matches(e)], live=False)
        done = not chunk or chunk[-1].seq >= job.to_seq
        new_cursor = chunk[-1].seq if chunk else job.to_seq
        await self._ledger.replay_progress(job.id, new_cursor, self._replay_delivered, done)
        if done:
            log.info(
                "destination %s: replay %d of seq %d..%d done",
                self.destination.id,
                job.id,
                job.from_seq,
                job.to_seq,
            )
        return not done

    # -- waiting --------------------------------------------------------------------------

    async def _check_destination(self) -> None:
        """Re-check the URL guard when the loop starts: DNS may have changed since it was saved."""
        while True:
            try:
                await self._sender.check_destination()
                return
            except UnsafeUrl as exc:
                self._failures += 1
                # A host that does not resolve may in a moment; one that resolves inside the
                # network will not change soon.
                delay = self._backoff() if exc.transient else self._policy.max_seconds
                await self._record_failure(DeliveryState.FAILING, None, f"URL refused: {exc}", delay)
                await self._pause(delay)

    def _backoff(self) -> float:
        """The plain retry schedule, for failures that are not an HTTP answer."""
        return retry_delay(Outcome.RETRY, self._failures, None, self._policy, self._rng)

    async def _pause(self, seconds: float) -> None:
        """Sleep before a retry; end at once when asked to stop (raising `_Stopping`) or to
        retry now (then the backoff and the breaker start over)."""
        # A retry asked while a request was in flight ends this wait at once: one more try.
        stop = asyncio.ensure_future(self._stop.wait())
        retry = asyncio.ensure_future(self._retry.wait())
        try:
            await asyncio.wait({stop, retry}, timeout=seconds, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
            retry.cancel()
        if self._stop.is_set():
            raise _Stopping
        if self._retry.is_set():
            self._retry.clear()
            self._failures = 0
            self._breaker.accepted()
            log.info(
                "destination %s (%s): retrying now, as asked", self.destination.name, self.destination.id
            )

    async def _wait_for_events(self, flag: asyncio.Event) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        woken = asyncio.ensure_future(flag.wait())
        try:
            await asyncio.wait({stop, woken}, timeout=self._resync_seconds, return_when="FIRST_COMPLETED")
        finally:
            stop.cancel()
            woken.cancel()
        if woken.done() and not woken.cancelled():
            self._next_replay_check = 0.0  # a replay request also wakes the loops

    # -- the ledger -----------------------------------------------------------------------

    async def _commit(self, cursor: int) -> None:
        delivered = self._delivered_uncommitted
        # Taken as committed before the await: if a cancel lands while the ledger writes,
        # `_commit_partial` must not add the same deliveries a second time.
        self._committed = self._delivered_through = cursor
        self._delivered_uncommitted = 0
        self._last_commit = self._clock()
        await self._ledger.commit(cursor, delivered)

    async def _commit_partial(self) -> None:
        """On stop or error, keep what was delivered of an unfinished batch."""
        if self._delivered_through <= self._committed:
            return
        try:
            await self._ledger.commit(self._delivered_through, self._delivered_uncommitted)
        except Exception:
            # Not fatal: at-least-once holds, the restart re-sends from the stored cursor.
            log.exception("could not commit the progress of destination %s", self.destination.id)
            return
        self._committed = self._delivered_through
        self._delivered_uncommitted = 0

    async def _record_failure(
        self,
        state: DeliveryState,
        status: int | None,
        message: str,
        delay: float,
        breaker: BreakerState | None = None,
    ) -> None:
        next_retry = int((time.time() + delay) * 1000)
        await self._ledger.failed(state, status, message, self._failures, next_retry, breaker)
