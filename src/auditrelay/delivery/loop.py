"""The delivery loop of one destination: read after the cursor, filter, render, send, commit.

Several requests are in flight at once (`window.ConcurrencyWindow` decides how many, as
Vector's adaptive request concurrency does), so a destination's rate does not hang on its
round trip. Answers are handled in log order: the cursor moves to the end of the longest
run of accepted requests, and is committed after every accepted request (the group commit
of `ledger.CursorCommits` makes that cheap). A request keeps its slot in the window until
the commit that covers it is durable, so a crash at any point re-sends at most the requests
in the window (at-least-once, never a gap). A receiver may see the requests of one window
out of order; a destination set `ordered` sends one at a time.

The window is for the healthy path. When a request is not accepted, the loop stops sending
new ones and handles that request alone, as before the window: it retries with backoff,
splits a refused batch, sets a refused event aside as a dead letter. The requests after it
keep their answers; once it is accepted, those that failed meanwhile are sent again at once.

Each loop is an asyncio task with its own sender (its own connection pool): a slow or
hanging destination only ever awaits, it never holds up another loop.

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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from auditrelay.delivery.ledger import Ledger
from auditrelay.delivery.policy import Action, Breaker, RetryPolicy, decide, retry_delay
from auditrelay.delivery.sender import Attempt, Sender
from auditrelay.delivery.window import ConcurrencyWindow
from auditrelay.destinations import DestinationKind, EventFilter, Outcome, OutgoingRequest
from auditrelay.log import Wakeups
from auditrelay.metrics import DELIVERY_FAILURES, EVENTS_DEAD_LETTERED, EVENTS_DELIVERED
from auditrelay.model import (
    AttemptRecord,
    BreakerState,
    DeliveryState,
    Destination,
    InFlight,
    StateChange,
    StoredEvent,
)
from auditrelay.security import UnsafeUrl

log = logging.getLogger(__name__)


class EventSource(Protocol):
    """Where the loop reads the log (`log.LogTail` in the service)."""

    async def read_after(self, cursor: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
        """At most `limit` events after `cursor`, and about `max_bytes` of them."""


class _Stopping(Exception):
    """Raised inside the loop once a stop was asked for, to unwind to the final commit."""


@dataclass(eq=False)
class _Ticket:
    """One request of the live stream, from its first attempt until its commit is durable.

    `through` is the cursor once it is done (for the last request of a read, the read's last
    event, so the events the filters skipped are passed too). A read whose events the
    filters all skip is a ticket without a request, done at once, holding no slot.
    """

    request: OutgoingRequest | None
    through: int
    task: asyncio.Task[Attempt] | None = None
    #: When its (latest) first attempt started (monotonic), and the same in wall-clock ms.
    sent_at: float = 0.0
    sent_at_ms: int = 0
    #: Events of it delivered: counted once it is done.
    delivered: int = 0


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
        resync_seconds: float = 2.0,
        slow_after: float = 5.0,
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
        self._resync_seconds = resync_seconds
        #: A request in flight longer than this turns the destination `slow`.
        self._slow_after = slow_after
        #: The state last written (each change is written with an audit event).
        self._state = DeliveryState.PENDING
        self._clock = clock
        #: Wall-clock seconds, for the breaker's hold (its start is kept across restarts).
        self._wall = wall
        self._rng = rng
        self._filter = EventFilter(destination.org, destination.event_types, destination.namespaces)
        self._read_limit = kind.read_limit(destination)
        self._read_bytes = kind.read_bytes(destination)
        self._breaker = Breaker(policy)
        self._failures = 0
        self._window = self._new_window()
        #: Sent, answer not handled yet, in log order.
        self._sending: deque[_Ticket] = deque()
        #: Rendered from the current read, not sent yet.
        self._unsent: deque[_Ticket] = deque()
        #: Done (accepted or set aside), waiting for the commit that covers them.
        self._uncommitted: deque[_Ticket] = deque()
        #: How far the log has been read (and rendered into tickets).
        self._position = -1
        #: When the latest request of the live stream was first sent (the linger counts from it).
        self._last_sent = float("-inf")
        #: The end of the longest run of done tickets, and the events they delivered.
        self._accepted_through = -1
        self._accepted_events = 0
        self._committed = -1
        self._commit_task: asyncio.Task[None] | None = None
        #: When the latest accepted request had started: evidence that the destination
        #: takes requests sent after a refused one (a WAF refusing content, not credentials).
        self._last_accepted_start = float("-inf")
        #: Live events delivered by the parts of a request handled alone (a split).
        self._split_delivered = 0
        #: The request being handled alone, while it is (nothing after it may count as done).
        self._troubled_ticket: _Ticket | None = None
        self._replay_delivered = 0
        self._next_replay_check = 0.0
        self._stop = asyncio.Event()
        self._retry = asyncio.Event()

    @property
    def version(self) -> int:
        return self.destination.version

    @property
    def in_flight(self) -> int:
        """Requests sent whose answer has not come yet."""
        return sum(1 for t in self._sending if t.task is not None and not t.task.done())

    @property
    def window_limit(self) -> int:
        return self._window.limit

    def request_stop(self) -> None:
        """Finish the requests in flight, commit, and end (the supervisor bounds the wait)."""
        self._stop.set()

    def retry_now(self) -> None:
        """An admin's "Retry now": end the wait before the next attempt at once, start the
        backoff over, and end the breaker's hold. A request in flight is not disturbed."""
        self._retry.set()

    def _new_window(self) -> ConcurrencyWindow:
        settings = self.destination.delivery
        maximum = 1 if settings.ordered else settings.max_in_flight
        return ConcurrencyWindow(maximum, now=self._clock())

    async def run(self) -> None:
        """Deliver until stopped; unexpected errors restart the loop after a pause."""
        while not self._stop.is_set():
            try:
                await self._deliver_forever()
            except _Stopping:
                await self._finish_in_flight()
                await self._commit_partial()
                return
            except asyncio.CancelledError:
                if self.in_flight:
                    log.warning(
                        "destination %s: stopped with %d requests unanswered; they will be sent again",
                        self.destination.id,
                        self.in_flight,
                    )
                self._cancel_in_flight()
                await self._commit_partial()
                raise
            except Exception as exc:  # a bug or a database outage must not end delivery for good
                log.exception("delivery loop of destination %s failed; restarting", self.destination.id)
                self._cancel_in_flight()
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
        cursor, breaker, self._state = await self._ledger.resume_point()
        self._breaker = Breaker(self._policy, breaker)
        self._committed = self._accepted_through = self._position = cursor
        self._accepted_events = 0
        self._sending.clear()
        self._unsent.clear()
        self._uncommitted.clear()
        self._troubled_ticket = None
        self._window = self._new_window()
        flag = self._wakeups.subscribe()
        try:
            await self._check_destination()
            linger = self.destination.batch.linger_ms / 1000
            while not self._stop.is_set():
                flag.clear()
                batch = await self._source.read_after(self._position, self._read_limit, self._read_bytes)
                if batch:
                    await self._send_read(await self._lingered(batch, linger))
                # Replay chunks alternate with live reads. Every wake-up asks for a check of
                # the replay jobs, a read of the store: made after the live events are on
                # their way, it does not delay them.
                replaying = await self._replay_step()
                if not batch:
                    if self._sending:
                        await self._await_progress(flag)
                    elif not replaying:
                        await self._wait_for_events(flag)
            raise _Stopping
        finally:
            self._wakeups.unsubscribe(flag)

    async def _lingered(self, batch: list[StoredEvent], linger: float) -> list[StoredEvent]:
        """`batch` and the events that come during the rest of the linger, if it is short.

        The linger lets a burst fill one request instead of many, but it is counted from the
        last request sent: events after a quiet spell go at once (sleeping would only add
        latency), those right behind a request wait out the rest of it, so a busy stream
        still sends at most one short request per linger."""
        size = sum(len(e.body) for e in batch)
        wait = self._last_sent + linger - self._clock()
        if wait <= 0 or len(batch) >= self._read_limit or size >= self._read_bytes:
            return batch
        await asyncio.sleep(wait)
        return batch + await self._source.read_after(
            batch[-1].seq, self._read_limit - len(batch), self._read_bytes - size
        )

    # -- the window -----------------------------------------------------------------------

    async def _send_read(self, batch: Sequence[StoredEvent]) -> None:
        """Turn one read into tickets, each sent as soon as the window has room."""
        events = [e for e in batch if self._filter.matches(e)]
        last = batch[-1].seq
        self._position = last
        requests = list(self.kind.requests(self.destination, events)) if events else []
        if not requests:
            self._sending.append(_Ticket(None, last))
            await self._handle_answers()
            return
        # Rendered, not sent yet: a probe (`_probe`) may take the next one out of turn.
        self._unsent = deque(
            _Ticket(r, last if i == len(requests) - 1 else r.events[-1].seq) for i, r in enumerate(requests)
        )
        while self._unsent:
            while self._window.full:
                if self._stop.is_set():
                    raise _Stopping
                await self._await_progress(None)
            if self._stop.is_set():
                raise _Stopping
            if self._unsent:
                self._send(self._unsent.popleft())
        await self._handle_answers()

    def _send(self, ticket: _Ticket) -> None:
        self._window.take()
        self._launch(ticket)
        self._sending.append(ticket)

    def _launch(self, ticket: _Ticket) -> None:
        assert ticket.request is not None
        ticket.sent_at = self._last_sent = self._clock()
        ticket.sent_at_ms = int(self._wall() * 1000)
        ticket.task = asyncio.create_task(self._first_attempt(ticket.request, ticket.sent_at))

    async def _first_attempt(self, request: OutgoingRequest, started: float) -> Attempt:
        result = await self._sender(request)
        self._observe(request, result, started, live=True)
        return result

    def _observe(self, request: OutgoingRequest, result: Attempt, started: float, live: bool) -> None:
        """What every answer teaches: the window's round trips, the history, the evidence."""
        now = self._clock()
        delivered = result.delivered
        self._window.record(now - started if delivered else None, result.outcome is Outcome.RETRY, now)
        if delivered and live:
            self._last_accepted_start = max(self._last_accepted_start, started)
        self._note(request, result, live)

    async def _await_progress(self, flag: asyncio.Event | None) -> None:
        """Wait until the oldest request is answered, a commit frees slots, new events come
        (`flag`) or a stop is asked; then handle the answers that are in."""
        # asyncio.wait never cancels what it waits for: the request and the commit go on.
        waiters: set[asyncio.Future[Any]] = set()
        if self._sending and self._sending[0].task is not None:
            waiters.add(self._sending[0].task)
        if self._commit_task is not None and not self._commit_task.done():
            waiters.add(self._commit_task)
        own: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stop.wait())]
        if flag is not None:
            own.append(asyncio.ensure_future(flag.wait()))
        timeout = self._resync_seconds
        slow_in = self._slow_in()
        if slow_in is not None and self._state in (DeliveryState.HEALTHY, DeliveryState.PENDING):
            timeout = min(timeout, slow_in + 0.01)
        try:
            await asyncio.wait(waiters | set(own), timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for future in own:
                future.cancel()
        self._raise_commit_error()
        await self._note_slow()
        await self._handle_answers()

    async def _handle_answers(self) -> None:
        """Handle the answers in, oldest first, up to the first still awaited."""
        while self._sending:
            ticket = self._sending[0]
            if ticket.task is not None and not ticket.task.done():
                return
            self._sending.popleft()
            if ticket.task is not None:
                result = ticket.task.result()
                assert ticket.request is not None
                if result.delivered:
                    await self._accepted(ticket.request, True)
                    ticket.delivered += len(ticket.request.events)
                else:
                    await self._troubled(ticket, result)
            self._done(ticket)

    def _done(self, ticket: _Ticket) -> None:
        """A ticket is accepted (or its refused events set aside): the cursor may pass it."""
        self._accepted_through = ticket.through
        self._accepted_events += ticket.delivered
        if ticket.request is not None:  # it holds a slot until its commit lands
            self._uncommitted.append(ticket)
        if self._commit_task is None or self._commit_task.done():
            self._raise_commit_error()
            self._commit_task = asyncio.create_task(self._commit_accepted())

    async def _troubled(self, ticket: _Ticket, first: Attempt) -> None:
        """The oldest request was not accepted: handle it alone, with the policy's rules."""
        assert ticket.request is not None
        self._troubled_ticket = ticket
        # Commits of the requests before it land first: a failure written now must not be
        # overwritten by a commit that marks the destination healthy.
        await self._flush_commits()
        if first.outcome is Outcome.UNAUTHORIZED and len(ticket.request.events) == 1:
            await self._probe(ticket.sent_at)
        self._split_delivered = 0
        await self._deliver_request(ticket.request, True, first=first, since=ticket.sent_at)
        ticket.delivered += self._split_delivered
        self._split_delivered = 0
        # It is through: requests after it that failed meanwhile (the destination was down
        # for them too) go again at once, rather than each waiting out a backoff of its own.
        for later in self._sending:
            task = later.task
            if task is not None and task.done() and not task.result().delivered:
                self._launch(later)
        self._troubled_ticket = None

    async def _probe(self, since: float) -> None:
        """A lone event refused with 401/403: are the credentials wrong, or is it this event
        (a WAF refusing its content)? Unless a request sent after it was accepted already,
        send the next request of the log now, as the next ticket (so it is not sent twice),
        and wait for its answer: accepted means the credentials work. An ordered destination
        sends nothing out of turn, and reads unauthorized."""
        if self._last_accepted_start > since or self.destination.delivery.ordered:
            return
        probe = next((t for t in self._sending if t.task is not None), None)
        if probe is None and self._unsent:
            probe = self._unsent.popleft()
            self._send(probe)
        if probe is None:
            batch = await self._source.read_after(self._position, self._read_limit, self._read_bytes)
            events = [e for e in batch if self._filter.matches(e)]
            request = next(iter(self.kind.requests(self.destination, events)), None) if events else None
            if request is None:
                return
            probe = _Ticket(request, request.events[-1].seq)
            self._position = probe.through
            self._send(probe)
        assert probe.task is not None
        await asyncio.wait({probe.task})

    async def _finish_in_flight(self) -> None:
        """A stop: let the requests in flight be answered, and keep those accepted in a row
        from the oldest (a request being retried keeps the rest from counting).

        One that failed is sent once more, now: the cursor cannot pass it, so leaving it
        would re-send every accepted request after it on the next start (the supervisor's
        grace bounds this, as it bounds the wait)."""
        tasks = [t.task for t in self._sending if t.task is not None]
        if tasks and self._troubled_ticket is None:
            await asyncio.wait(tasks)
            while self._sending:
                ticket = self._sending[0]
                task = ticket.task
                if task is not None:
                    if task.cancelled() or task.exception() is not None:
                        break
                    if not task.result().delivered:
                        assert ticket.request is not None
                        started = self._clock()
                        again = await self._sender(ticket.request)
                        self._observe(ticket.request, again, started, live=True)
                        if not again.delivered:
                            break
                self._sending.popleft()
                if ticket.request is not None:
                    EVENTS_DELIVERED.labels(self.destination.id).inc(len(ticket.request.events))
                    ticket.delivered += len(ticket.request.events)
                self._done(ticket)
            log.info(
                "destination %s: stopping; %d requests in flight answered, %d left to send again",
                self.destination.id,
                len(tasks),
                sum(1 for t in self._sending if t.task is not None),
            )
        self._cancel_in_flight()

    def _cancel_in_flight(self) -> None:
        for ticket in self._sending:
            if ticket.task is not None:
                ticket.task.cancel()
        self._sending.clear()

    # -- sending --------------------------------------------------------------------------

    async def _deliver_events(self, events: Sequence[StoredEvent], live: bool, since: float) -> None:
        """Send `events` one request after another, each until done."""
        for request in self.kind.requests(self.destination, events):
            if self._stop.is_set():
                raise _Stopping
            await self._deliver_request(request, live, since=since)

    async def _deliver_request(
        self,
        request: OutgoingRequest,
        live: bool,
        *,
        first: Attempt | None = None,
        since: float | None = None,
    ) -> None:
        """Send until accepted, carrying out what the policy decides after each attempt.

        `first` is an attempt already made; `since` is when the request it is part of was
        first sent (an acceptance of a request sent later shows that a 401/403 refuses this
        content rather than the credentials). Live events delivered add to
        `_split_delivered`."""
        rejections = 0
        since = self._clock() if since is None else since
        while True:
            if first is not None:
                result, first = first, None
            else:
                started = self._clock()
                result = await self._sender(request)
                self._observe(request, result, started, live)
            held = (
                result.outcome in (Outcome.REJECTED, Outcome.UNAUTHORIZED)
                and live
                and self._breaker.holds(self._wall())
            )
            decision = decide(
                result.verdict,
                events=len(request.events),
                rejections=rejections,
                failures=self._failures,
                replay=not live,
                held=held,
                others_accepted=self._last_accepted_start > since,
                policy=self._policy,
                rng=self._rng,
            )
            if decision.action is Action.DONE:
                await self._accepted(request, live)
                if live:
                    self._split_delivered += len(request.events)
                return
            DELIVERY_FAILURES.labels(self.destination.id, result.outcome.value).inc()
            if decision.action is Action.SKIP:
                # A replay re-sends what the live stream already handled: a refusal now (a
                # SIEM refusing duplicates, say) is in the history, and the replay moves on.
                return
            if decision.action is Action.SPLIT:
                # Find the refused events: each half is rendered and sent on its own.
                half = len(request.events) // 2
                await self._deliver_events(request.events[:half], live, since)
                await self._deliver_events(request.events[half:], live, since)
                return
            if decision.action is Action.DEAD_LETTER:
                await self._dead_letter(request.events[0], rejections + 1, result)
                return
            if decision.counts_rejection:
                rejections += 1
            self._failures += 1
            self._window.fall_back()
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
        else:
            self._replay_delivered += len(request.events)
        self._breaker.accepted()
        if self._failures:
            failures, self._failures = self._failures, 0
            change = self._change_to(
                DeliveryState.HEALTHY, f"accepted again after {failures} failed attempts"
            )
            await self._ledger.recovered(change)
            self._told(change)

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
        # Everything before it is done (it is in the oldest request); commits in progress
        # land first, so the cursor the dead letter writes is never overwritten by a lower one.
        await self._flush_commits()
        # Events of its request delivered before it (a split) count with it.
        delivered = self._split_delivered
        self._split_delivered = 0
        change = self._change_to(DeliveryState.HEALTHY, "events accepted") if delivered else None
        await self._ledger.dead_letter(
            event, event_id, attempts, result.status, error, delivered, self._breaker.state, change
        )
        self._told(change)
        self._committed = max(self._committed, event.seq)

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
            await self._deliver_events([e for e in chunk if self._filter.matches(e)], False, self._clock())
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

    async def _commit_accepted(self) -> None:
        """Commit the done tickets until none is left; free their slots as each lands.

        One commit at a time per loop: answers that come while one is written go in the
        next, so a fast destination commits once per write, not once per request."""
        while self._accepted_through > self._committed:
            through, events = self._accepted_through, self._accepted_events
            # Accepted answers end `slow` unless an older request is still past the threshold
            # (a SIEM slow on every request would otherwise flap between the two).
            still_slow = self._state is DeliveryState.SLOW and self._slow_in() == 0
            healthy = DeliveryState.SLOW if still_slow else DeliveryState.HEALTHY
            change = self._change_to(healthy, "events accepted") if events else None
            await self._ledger.commit(through, events, self._in_flight_now(), change, still_slow)
            self._told(change)
            self._accepted_events -= events
            self._committed = through
            self._free_committed()
        # A dead letter may have committed past a ticket already.
        self._free_committed()

    def _free_committed(self) -> None:
        freed = 0
        while self._uncommitted and self._uncommitted[0].through <= self._committed:
            self._uncommitted.popleft()
            freed += 1
        self._window.release(freed)

    def _raise_commit_error(self) -> None:
        task = self._commit_task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            self._commit_task = None
            raise task.exception()  # type: ignore[misc]

    async def _flush_commits(self) -> None:
        """Return once everything done so far is committed."""
        while self._accepted_through > self._committed or (
            self._commit_task is not None and not self._commit_task.done()
        ):
            if self._commit_task is None or self._commit_task.done():
                self._raise_commit_error()
                self._commit_task = asyncio.create_task(self._commit_accepted())
            await asyncio.shield(self._commit_task)
        self._raise_commit_error()

    async def _commit_partial(self) -> None:
        """On stop or error, keep what was delivered."""
        try:
            await self._flush_commits()
        except Exception:
            # Not fatal: at-least-once holds, the restart re-sends from the stored cursor.
            log.exception("could not commit the progress of destination %s", self.destination.id)

    async def _record_failure(
        self,
        state: DeliveryState,
        status: int | None,
        message: str,
        delay: float,
        breaker: BreakerState | None = None,
    ) -> None:
        next_retry = int((time.time() + delay) * 1000)
        change = self._change_to(state, message)
        await self._ledger.failed(
            state, status, message, self._failures, next_retry, breaker, self._in_flight_now(), change
        )
        self._told(change)

    # -- health ---------------------------------------------------------------------------

    def _change_to(self, state: DeliveryState, reason: str) -> StateChange | None:
        """The change of state to write, if `state` is new (the caller writes it)."""
        if state is self._state:
            return None
        change = StateChange(self._state, state, reason)
        self._state = state
        return change

    def _told(self, change: StateChange | None) -> None:
        """A change was written with its audit event: the loops deliver it now."""
        if change is not None:
            self._wakeups.notify()

    def _in_flight_now(self) -> InFlight:
        waiting = [t for t in self._sending if t.task is not None and not t.task.done()]
        return InFlight(len(waiting), min((t.sent_at_ms for t in waiting), default=None))

    def _slow_in(self) -> float | None:
        """Seconds until the oldest request in flight turns slow (0: it is), or None."""
        head = self._sending[0] if self._sending else None
        if head is None or head.task is None or head.task.done():
            return None
        return max(0.0, head.sent_at + self._slow_after - self._clock())

    async def _note_slow(self) -> None:
        if self._state not in (DeliveryState.HEALTHY, DeliveryState.PENDING) or self._slow_in() != 0:
            return
        in_flight = self._in_flight_now()
        waited = self._clock() - self._sending[0].sent_at
        change = self._change_to(
            DeliveryState.SLOW,
            f"a request has waited {waited:.0f} s for an answer ({in_flight.requests} in flight)",
        )
        log.warning(
            "destination %s (%s): %s", self.destination.name, self.destination.id, change and change.reason
        )
        await self._ledger.slow(in_flight, change)
        self._told(change)
