"""The delivery loop of one destination: read after the cursor, filter, render, send, commit.

The cursor moves only after the destination accepted everything up to it, so a crash at
any point re-sends at most the batch in flight (at-least-once), in log order. Each loop is
an asyncio task with its own HTTP connection pool: a slow or hanging destination only ever
awaits, it never holds up another loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from auditrelay.config import Settings
from auditrelay.delivery.retry import retry_delay
from auditrelay.delivery.sender import attempt, new_client
from auditrelay.destinations import KINDS, Destination, EventFilter, Outcome, OutgoingRequest
from auditrelay.log import StoredEvent, Wakeups, read_after
from auditrelay.security.url_guard import UnsafeUrl, check_destination_url
from auditrelay.store import Database
from auditrelay.store.destination_rows import DestinationRows

log = logging.getLogger(__name__)


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
    ) -> None:
        self.destination = destination
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
        self._failures = 0
        self._committed = -1
        self._delivered_through = -1
        self._delivered_uncommitted = 0
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        """Finish the request in flight, commit, and end (the supervisor bounds the wait)."""
        self._stop.set()

    @property
    def version(self) -> int:
        return self.destination.version

    async def run(self) -> None:
        """Deliver until cancelled; unexpected errors restart the loop after a pause."""
        while not self._stop.is_set():
            try:
                await self._deliver_forever()
            except _Stopping:
                await self._commit_partial()
                return
            except asyncio.CancelledError:
                await self._commit_partial()
                raise
            except Exception as exc:  # a bug or a database outage must not kill delivery for good
                log.exception("delivery loop of destination %s failed; restarting", self.destination.id)
                self._failures += 1
                delay = retry_delay(
                    Outcome.RETRY,
                    self._failures,
                    None,
                    self._settings.retry_initial_seconds,
                    self._settings.retry_max_seconds,
                    0,
                )
                with contextlib.suppress(Exception):
                    await self._record_failure("failing", None, f"internal error: {exc}", delay)
                with contextlib.suppress(_Stopping):
                    await self._pause(delay)

    async def _deliver_forever(self) -> None:
        status = await self._db.run(self._read_status)
        cursor = status
        self._committed = self._delivered_through = cursor
        flag = self._wakeups.subscribe()
        try:
            async with new_client(
                self._settings.connect_timeout_seconds, self._settings.request_timeout_seconds
            ) as client:
                await self._check_url()
                linger = self.destination.batch.linger_ms / 1000
                while not self._stop.is_set():
                    flag.clear()
                    batch = await self._db.run(self._read, cursor, self._read_limit)
                    if not batch:
                        await self._wait_for_events(flag)
                        continue
                    if linger and len(batch) < self._read_limit:
                        # A short linger lets a burst fill one request instead of many.
                        await asyncio.sleep(linger)
                        batch += await self._db.run(self._read, batch[-1].seq, self._read_limit - len(batch))
                    await self._deliver_batch(client, batch)
                    cursor = batch[-1].seq
                    await self._commit(cursor)
        finally:
            self._wakeups.unsubscribe(flag)

    async def _deliver_batch(self, client: httpx.AsyncClient, batch: list[StoredEvent]) -> None:
        matching = [event for event in batch if self._filter.matches(event)]
        for request in self.kind.requests(self.destination, matching):
            if self._stop.is_set():
                raise _Stopping
            await self._send_until_accepted(client, request)
            self._delivered_through = request.events[-1].seq
            self._delivered_uncommitted += len(request.events)

    async def _send_until_accepted(self, client: httpx.AsyncClient, request: OutgoingRequest) -> None:
        total_timeout = self._settings.request_timeout_seconds + self._settings.connect_timeout_seconds
        while True:
            result = await attempt(client, self.kind, request, total_timeout)
            verdict = result.verdict
            if verdict.outcome is Outcome.DELIVERED:
                if self._failures:
                    self._failures = 0
                    await self._db.run(self._write, self._rows.set_state, "healthy")
                return
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
            message = verdict.message
            if verdict.outcome is Outcome.REJECTED:
                message = f"rejected ({len(request.events)} events; retrying): {message}"
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
                delay = self._settings.retry_max_seconds
                await self._record_failure("failing", None, f"URL refused: {exc}", delay)
                await self._pause(delay)

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

    # -- database ---------------------------------------------------------------------

    def _read_status(self) -> int:
        with self._db.read() as conn:
            status = self._rows.status(conn, self.destination.id)
        if status is None:
            raise LookupError(f"destination {self.destination.id} has no status row")
        return status.cursor

    def _read(self, cursor: int, limit: int) -> list[StoredEvent]:
        with self._db.read() as conn:
            return read_after(conn, cursor, limit)

    def _write(self, fn: object, *args: object) -> None:
        with self._db.write() as conn:
            fn(conn, self.destination.id, *args)  # type: ignore[operator]

    async def _commit(self, cursor: int) -> None:
        delivered = self._delivered_uncommitted
        await self._db.run(self._write, self._rows.commit_progress, cursor, delivered)
        self._committed = self._delivered_through = cursor
        self._delivered_uncommitted = 0

    async def _commit_partial(self) -> None:
        """On shutdown or restart, keep what was delivered of an unfinished batch."""
        if self._delivered_through > self._committed:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._db.run(
                        self._write,
                        self._rows.commit_progress,
                        self._delivered_through,
                        self._delivered_uncommitted,
                    )
                )

    async def _record_failure(self, state: str, status: int | None, message: str, delay: float) -> None:
        next_retry = int((time.time() + delay) * 1000)
        await self._db.run(
            self._write, self._rows.record_failure, state, status, message, self._failures, next_retry
        )
