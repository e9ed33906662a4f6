"""The delivery loop of one destination: read after the cursor, filter, render, send, commit.

The cursor moves only after the destination accepted everything up to it (or an event was
set aside as a dead letter), so a crash at any point re-sends at most the batch in flight
(at-least-once), in log order. Each loop is an asyncio task with its own HTTP connection
pool: a slow or hanging destination only ever awaits, it never holds up another loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson

from auditrelay.config import Settings
from auditrelay.delivery.progress import ProgressWriter
from auditrelay.delivery.retry import retry_delay
from auditrelay.delivery.sender import Attempt, attempt, new_client
from auditrelay.destinations import KINDS, Destination, EventFilter, Outcome, OutgoingRequest
from auditrelay.log import LogTail, StoredEvent, Wakeups
from auditrelay.metrics import DELIVERY_FAILURES, EVENTS_DEAD_LETTERED, EVENTS_DELIVERED
from auditrelay.security.url_guard import UnsafeUrl, check_destination_url
from auditrelay.store import Database
from auditrelay.store import delivery_rows as dr
from auditrelay.store.destination_rows import DestinationRows

log = logging.getLogger(__name__)

#: A single event refused this many times in a row (4xx other than 401/403/408/429) is
#: set aside as a dead letter so the stream goes on.
REJECTIONS_BEFORE_DEAD_LETTER = 3
#: After this many dead letters in a row with nothing accepted in between, the destination
#: is more likely misconfigured (wrong path, wrong format) than fed poison: stop setting
#: events aside and hold the stream as `failing` until it accepts something again.
DEAD_LETTER_BREAKER = 5
#: Within a batch of many requests, commit the cursor at least this often.
COMMIT_INTERVAL_SECONDS = 1.0
#: Trim the attempt history every this many writes.
TRIM_EVERY = 25


class _Stopping(Exception):
    """Raised inside the loop once a stop was asked for, to unwind to the final commit."""


class DestinationWorker:
    def __init__(
        self,
        destination: Destination,
        db: Database,
        rows: DestinationRows,
        wakeups: Wakeups,
        settings: Settings,
        tail: LogTail | None = None,
        progress: ProgressWriter | None = None,
    ) -> None:
        self.destination = destination
        self._tail = tail or LogTail(db)
        self._progress = progress or ProgressWriter(db, rows)
        self.kind = KINDS[destination.kind]
        self._db = db
        self._rows = rows
        self._wakeups = wakeups
        self._settings = settings
        self._filter = EventFilter(destination.org, destination.event_types, destination.namespaces)
        per_event = destination.kind == "http" and destination.options.get("batch_format", "none") == "none"
        # Per-event destinations commit their cursor every `max_events` requests; batching
        # ones read enough to fill a request even when filters drop most events.
        self._read_limit = (
            destination.batch.max_events if per_event else max(destination.batch.max_events, 1000)
        )
        self._total_timeout = settings.request_timeout_seconds + settings.connect_timeout_seconds
        self._failures = 0
        self._dead_in_a_row = 0
        self._held_since: float | None = None
        self._committed = -1
        self._delivered_through = -1
        self._delivered_uncommitted = 0
        self._replay_delivered = 0
        self._attempts: list[dr.AttemptRecord] = []
        self._writes = 0
        self._next_replay_check = 0.0
        self._last_commit = time.monotonic()
        self._stop = asyncio.Event()

    @property
    def version(self) -> int:
        return self.destination.version

    def request_stop(self) -> None:
        """Finish the request in flight, commit, and end (the supervisor bounds the wait)."""
        self._stop.set()

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
                    await self._record_failure("failing", None, f"internal error: {exc}", delay)
                with contextlib.suppress(_Stopping):
                    await self._pause(delay)

    async def _deliver_forever(self) -> None:
        cursor = await self._db.run(self._read_cursor)
        self._committed = self._delivered_through = cursor
        self._delivered_uncommitted = 0
        flag = self._wakeups.subscribe()
        try:
            async with new_client(
                self._settings.connect_timeout_seconds,
                self._settings.request_timeout_seconds,
                self._settings.allow_private_destinations,
            ) as client:
                await self._check_url()
                linger = self.destination.batch.linger_ms / 1000
                while not self._stop.is_set():
                    flag.clear()
                    replaying = await self._replay_step(client)
                    batch = await self._tail.read_after(cursor, self._read_limit)
                    if not batch:
                        if not replaying:
                            await self._wait_for_events(flag)
                        continue
                    if linger and len(batch) < self._read_limit:
                        # A short linger lets a burst fill one request instead of many.
                        await asyncio.sleep(linger)
                        batch += await self._tail.read_after(batch[-1].seq, self._read_limit - len(batch))
                    await self._deliver_events(
                        client, [e for e in batch if self._filter.matches(e)], live=True
                    )
                    cursor = batch[-1].seq
                    await self._commit(cursor)
        finally:
            self._wakeups.unsubscribe(flag)

    # -- sending ------------------------------------------------------------------------

    async def _deliver_events(
        self, client: aiohttp.ClientSession, events: Sequence[StoredEvent], live: bool
    ) -> None:
        for request in self.kind.requests(self.destination, events):
            if self._stop.is_set():
                raise _Stopping
            await self._deliver_request(client, request, live)
            if live:
                self._delivered_through = request.events[-1].seq
                if time.monotonic() - self._last_commit > COMMIT_INTERVAL_SECONDS:
                    # A long batch of many requests: keep what is delivered, so a crash
                    # re-sends at most about a second's worth.
                    await self._commit(self._delivered_through)

    async def _deliver_request(
        self, client: aiohttp.ClientSession, request: OutgoingRequest, live: bool
    ) -> None:
        """Send until accepted; split rejected batches; set aside an event refused alone."""
        rejections = 0
        while True:
            result = await attempt(client, self.kind, request, self._total_timeout)
            self._note(request, result, live)
            verdict = result.verdict
            if verdict.outcome is Outcome.DELIVERED:
                if live:
                    EVENTS_DELIVERED.labels(self.destination.id).inc(len(request.events))
                    self._delivered_uncommitted += len(request.events)
                else:
                    self._replay_delivered += len(request.events)
                self._dead_in_a_row = 0
                self._held_since = None
                if self._failures:
                    self._failures = 0
                    await self._db.run(self._write, self._rows.set_state, "healthy")
                return
            DELIVERY_FAILURES.labels(self.destination.id, verdict.outcome.value).inc()
            rejected = verdict.outcome is Outcome.REJECTED
            message = verdict.message
            if rejected and not live:
                # A replay re-sends what the live stream already handled: a refusal now (a SIEM
                # refusing duplicates, say) is recorded in the history and the replay moves on.
                # It never dead-letters, and never counts toward the live stream's breaker.
                return
            if rejected and self._breaker_tripped():
                message = (
                    f"{DEAD_LETTER_BREAKER} events in a row were refused and set aside; holding the stream "
                    f"until it accepts one or the hold ends (check its URL and settings): {message}"
                )
            elif rejected:
                if len(request.events) > 1:
                    # Find the refused events: each half is rendered and sent on its own.
                    half = len(request.events) // 2
                    await self._deliver_events(client, request.events[:half], live)
                    await self._deliver_events(client, request.events[half:], live)
                    return
                rejections += 1
                if rejections >= REJECTIONS_BEFORE_DEAD_LETTER:
                    await self._dead_letter(request.events[0], rejections, result)
                    return
                message = f"event refused ({rejections}/{REJECTIONS_BEFORE_DEAD_LETTER}): {message}"
            self._failures += 1
            state = "unauthorized" if verdict.outcome is Outcome.UNAUTHORIZED else "failing"
            delay = retry_delay(
                verdict.outcome,
                self._failures,
                verdict.retry_after,
                self._settings.retry_initial_seconds,
                self._settings.retry_max_seconds,
                self._settings.unauthorized_retry_seconds,
            )
            log.warning(
                "destination %s (%s): %s; retry %d in %.1f s",
                self.destination.name,
                self.destination.id,
                message,
                self._failures,
                delay,
            )
            await self._record_failure(state, result.status, message, delay)
            await self._pause(delay)

    def _breaker_tripped(self) -> bool:
        """Too many dead letters in a row: hold the stream, but only for a while.

        A destination refusing everything is likely misconfigured, and setting its whole
        stream aside would be wrong; but real poison can come in runs too, and must not stop
        the stream for good. So the hold ends after `breaker_hold_seconds`, and splitting and
        dead-lettering resume (a misconfigured destination then loses at most five events
        per hold to its dead letters, all of them visible and re-sendable).
        """
        if self._dead_in_a_row < DEAD_LETTER_BREAKER:
            return False
        if self._held_since is None:
            self._held_since = time.monotonic()
        if time.monotonic() - self._held_since >= self._settings.breaker_hold_seconds:
            self._dead_in_a_row = 0
            self._held_since = None
            return False
        return True

    async def _dead_letter(self, event: StoredEvent, attempts: int, result: Attempt) -> None:
        event_id = str(orjson.loads(event.body).get("id", ""))
        answer = result.answer[:2000].decode("utf-8", "replace")
        error = result.verdict.message + (
            f" | answer: {answer}" if answer and answer not in result.verdict.message else ""
        )
        self._dead_in_a_row += 1
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
        records = self._take_attempts()
        delivered = self._delivered_uncommitted
        trim = self._trim_due()

        def write() -> None:
            with self._db.write() as conn:
                dr.add_dead_letter(
                    conn, self.destination.id, event.seq, event_id, event.body, attempts, result.status, error
                )
                # Everything before this event is delivered or set aside: moving the cursor
                # past it in the same transaction means a crash cannot dead-letter it twice.
                self._rows.commit_progress(conn, self.destination.id, event.seq, delivered)
                dr.record_attempts(conn, self.destination.id, records, trim=trim)

        await self._db.run(write)
        self._committed = self._delivered_through = event.seq
        self._delivered_uncommitted = 0
        self._last_commit = time.monotonic()

    def _note(self, request: OutgoingRequest, result: Attempt, live: bool) -> None:
        ok = result.verdict.outcome is Outcome.DELIVERED
        self._attempts.append(
            dr.AttemptRecord(
                at_ms=int(time.time() * 1000),
                events=len(request.events),
                bytes=len(request.content),
                http_status=result.status,
                latency_ms=round(result.latency_ms, 2),
                outcome=result.verdict.outcome.value,
                error=None if ok else result.verdict.message,
                replay=not live,
            )
        )
        # Bounded even if commits are rare (a long batch of per-event requests).
        if len(self._attempts) > dr.ATTEMPT_HISTORY:
            del self._attempts[: -dr.ATTEMPT_HISTORY]

    def _take_attempts(self) -> list[dr.AttemptRecord]:
        records, self._attempts = self._attempts, []
        return records

    # -- replay ---------------------------------------------------------------------------

    async def _replay_step(self, client: aiohttp.ClientSession) -> bool:
        """Send one chunk of a pending replay job, if any, without touching the live cursor.

        Chunks alternate with live batches, so a long replay never stalls the live stream;
        returns True while the job has more to send.
        """
        now = time.monotonic()
        if now < self._next_replay_check:
            return False
        job = await self._db.run(self._read_only, dr.pending_replay, self.destination.id)
        if job is None:
            self._next_replay_check = now + self._settings.resync_seconds
            return False
        chunk = [e for e in await self._tail.read_after(job.cursor, self._read_limit) if e.seq <= job.to_seq]
        self._replay_delivered = 0
        if chunk:
            await self._deliver_events(client, [e for e in chunk if self._filter.matches(e)], live=False)
        done = not chunk or chunk[-1].seq >= job.to_seq
        new_cursor = chunk[-1].seq if chunk else job.to_seq
        delivered = self._replay_delivered
        records = self._take_attempts()
        trim = self._trim_due()

        def write() -> None:
            with self._db.write() as conn:
                dr.advance_replay(conn, job.id, new_cursor, delivered, done)
                dr.record_attempts(conn, self.destination.id, records, trim=trim)

        await self._db.run(write)
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

    async def _check_url(self) -> None:
        """Re-check the URL guard when the loop starts: DNS may have changed since it was saved."""
        while True:
            try:
                await asyncio.to_thread(
                    check_destination_url, self.destination.url, self._settings.allow_private_destinations
                )
                return
            except UnsafeUrl as exc:
                self._failures += 1
                # A host that does not resolve may in a moment; one that resolves inside the
                # network will not change soon.
                delay = self._settings.retry_max_seconds
                if exc.transient:
                    delay = self._backoff()
                await self._record_failure("failing", None, f"URL refused: {exc}", delay)
                await self._pause(delay)

    def _backoff(self) -> float:
        """The plain retry schedule, for failures that are not an HTTP answer."""
        return retry_delay(
            Outcome.RETRY,
            self._failures,
            None,
            self._settings.retry_initial_seconds,
            self._settings.retry_max_seconds,
            0,
        )

    async def _pause(self, seconds: float) -> None:
        """Sleep before a retry, but end at once (raising `_Stopping`) when asked to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()
        if self._stop.is_set():
            raise _Stopping

    async def _wait_for_events(self, flag: asyncio.Event) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        woken = asyncio.ensure_future(flag.wait())
        try:
            await asyncio.wait(
                {stop, woken}, timeout=self._settings.resync_seconds, return_when="FIRST_COMPLETED"
            )
        finally:
            stop.cancel()
            woken.cancel()
        if woken.done() and not woken.cancelled():
            self._next_replay_check = 0.0  # a replay request also wakes the loops

    # -- database -------------------------------------------------------------------------

    def _read_cursor(self) -> int:
        with self._db.read() as conn:
            status = self._rows.status(conn, self.destination.id)
        if status is None:
            raise LookupError(f"destination {self.destination.id} has no status row")
        return status.cursor

    def _read_only(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._db.read() as conn:
            return fn(conn, *args)

    def _write(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._db.write() as conn:
            fn(conn, self.destination.id, *args)

    def _trim_due(self) -> bool:
        """Every writer of attempts trims the history now and then, not only commits."""
        self._writes += 1
        return self._writes % TRIM_EVERY == 0

    async def _write_progress(self, cursor: int, delivered: int, records: list[dr.AttemptRecord]) -> None:
        write = self._progress.commit(self.destination.id, cursor, delivered, records, self._trim_due())
        await asyncio.shield(write)

    async def _commit(self, cursor: int) -> None:
        delivered = self._delivered_uncommitted
        records = self._take_attempts()
        # Taken as committed before the await: if a cancel lands while the thread writes,
        # `_commit_partial` must not add the same deliveries a second time.
        self._committed = self._delivered_through = cursor
        self._delivered_uncommitted = 0
        self._last_commit = time.monotonic()
        await self._write_progress(cursor, delivered, records)

    async def _commit_partial(self) -> None:
        """On stop or error, keep what was delivered of an unfinished batch."""
        if self._delivered_through <= self._committed:
            return
        try:
            await self._write_progress(
                self._delivered_through, self._delivered_uncommitted, self._take_attempts()
            )
        except Exception:
            # Not fatal: at-least-once holds, the restart re-sends from the stored cursor.
            log.exception("could not commit the progress of destination %s", self.destination.id)
            return
        self._committed = self._delivered_through
        self._delivered_uncommitted = 0

    async def _record_failure(self, state: str, status: int | None, message: str, delay: float) -> None:
        next_retry = int((time.time() + delay) * 1000)
        records = self._take_attempts()
        failures = self._failures
        trim = self._trim_due()

        def write() -> None:
            with self._db.write() as conn:
                self._rows.record_failure(
                    conn, self.destination.id, state, status, message, failures, next_retry
                )
                dr.record_attempts(conn, self.destination.id, records, trim=trim)

        await self._db.run(write)
