"""Keeps one delivery loop running per active destination, in step with the database.

Admin changes poke the supervisor at once; a periodic resync also catches changes made by
other processes. A destination's `version` changes with every edit, and its loop is
restarted with the new settings (it resumes from its committed cursor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from auditrelay.config import Settings
from auditrelay.delivery.ledger import CursorCommits, StoreLedger
from auditrelay.delivery.loop import DeliveryLoop
from auditrelay.delivery.policy import RetryPolicy
from auditrelay.delivery.sender import HttpSender
from auditrelay.destinations import kind_named
from auditrelay.log import LogTail, Wakeups
from auditrelay.store import Database, DestinationRows, note_not_delivering, sample_lags

log = logging.getLogger(__name__)


class DeliverySupervisor:
    def __init__(self, db: Database, rows: DestinationRows, wakeups: Wakeups, settings: Settings) -> None:
        self._db = db
        self._rows = rows
        self._wakeups = wakeups
        self._settings = settings
        self._loops: dict[str, tuple[DeliveryLoop, asyncio.Task[None]]] = {}
        self._retries_seen: dict[str, int] = {}
        self._unreadable_noted: set[str] = set()
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tail = LogTail(db)
        self._commits = CursorCommits(db)
        self._policy = RetryPolicy.from_settings(settings)
        self._sampled_minute = -1

    async def start(self) -> None:
        await self.resync()
        self._task = asyncio.create_task(self._resync_forever(), name="delivery-supervisor")

    def poke(self) -> None:
        """Something changed: resync now rather than at the next tick."""
        self._poke.set()

    async def resync(self) -> None:
        async with self._lock:
            versions = await self._db.read(self._rows.versions)
            for destination_id, (loop, task) in list(self._loops.items()):
                wanted = versions.get(destination_id)
                if wanted is None or not wanted.active or wanted.version != loop.version or task.done():
                    # Stopping happens in the background: one hanging destination's grace
                    # period must not delay the start or stop of any other.
                    del self._loops[destination_id]
                    # An edit lets the requests in flight finish in full (they are not
                    # re-sent); a pause or a delete takes effect at once, cutting them off
                    # (a paused destination gets them again when it resumes).
                    stopped = wanted is None or not wanted.active
                    grace = (
                        0.0
                        if stopped and not task.done()
                        else self._settings.request_timeout_seconds + self._settings.connect_timeout_seconds
                    )
                    self._stopping[destination_id] = asyncio.create_task(
                        self._finish(destination_id, loop, task, grace), name=f"stop-{destination_id}"
                    )
                elif wanted.retry_requested_at_ms > self._retries_seen.get(destination_id, 0):
                    # "Retry now" (or a test send that was accepted): cut the backoff short.
                    self._retries_seen[destination_id] = wanted.retry_requested_at_ms
                    loop.retry_now()
            for destination_id, wanted in versions.items():
                if not wanted.active or destination_id in self._loops or destination_id in self._stopping:
                    continue  # a replacement starts once the old loop has committed and ended
                # A new loop tries at once anyway: earlier retry requests are spent.
                self._retries_seen[destination_id] = wanted.retry_requested_at_ms
                try:
                    await self._start_loop(destination_id)
                except Exception:
                    log.exception("cannot start delivery to destination %s; will retry", destination_id)

    async def _start_loop(self, destination_id: str) -> None:
        destination = await self._db.read(self._rows.get, destination_id)
        if destination is None or not destination.active:
            return
        if destination.secrets_unreadable:
            # Said in its status (once per process), not only in a log line every resync.
            if destination_id not in self._unreadable_noted:
                self._unreadable_noted.add(destination_id)
                log.error("not delivering to %s: %s", destination_id, destination.secrets_unreadable)
                await self._db.write(
                    note_not_delivering,
                    destination_id,
                    f"this node cannot deliver to it: {destination.secrets_unreadable}",
                )
            return
        self._unreadable_noted.discard(destination_id)
        kind = kind_named(destination.kind)
        sender = HttpSender.for_destination(
            destination, self._settings, connections=destination.delivery.max_in_flight
        )
        loop = DeliveryLoop(
            destination,
            kind,
            sender,
            StoreLedger(self._db, destination.id, self._commits),
            self._tail,
            self._wakeups,
            self._policy,
            resync_seconds=self._settings.resync_seconds,
            slow_after=self._settings.slow_request_seconds,
        )
        task = asyncio.create_task(_run_with(sender, loop), name=f"deliver-{destination_id}")
        self._loops[destination_id] = (loop, task)

    async def stop(self) -> None:
        """Stop every loop; each commits what it delivered before it goes."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        async with self._lock:
            # Shutdown must not wait long for a slow destination: the shorter grace applies.
            grace = min(
                self._settings.stop_grace_seconds,
                self._settings.request_timeout_seconds + self._settings.connect_timeout_seconds,
            )
            for destination_id, (loop, task) in list(self._loops.items()):
                del self._loops[destination_id]
                self._stopping[destination_id] = asyncio.create_task(
                    self._finish(destination_id, loop, task, grace)
                )
            await asyncio.gather(*self._stopping.values(), return_exceptions=True)

    async def _resync_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.resync_seconds):
                    await self._poke.wait()
            self._poke.clear()
            try:
                await self.resync()
            except Exception:
                log.exception("could not resync destinations; trying again shortly")
            try:
                await self.sample_lags()
            except Exception:
                log.exception("could not sample the destinations' lag; trying again shortly")

    async def sample_lags(self) -> None:
        """Once a minute, each destination's lag into its per-minute figures (the history the
        admin panel charts), by the process that delivers (the one supervisor running)."""
        minute = int(time.time() // 60)
        if minute == self._sampled_minute:
            return
        await self._db.write(sample_lags, self._rows)
        self._sampled_minute = minute

    async def _finish(
        self, destination_id: str, loop: DeliveryLoop, task: asyncio.Task[None], grace: float
    ) -> None:
        """Let the loop finish its request in flight and commit; cancel it past `grace`."""
        loop.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=grace)
        except TimeoutError:
            task.cancel()
        except Exception:
            log.exception("delivery loop of %s ended with an error", destination_id)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        self._stopping.pop(destination_id, None)
        self.poke()  # start its replacement, if any, now


async def _run_with(sender: HttpSender, loop: DeliveryLoop) -> None:
    """Run `loop` with its sender's connection pool open, and close it when the loop ends."""
    async with sender:
        await loop.run()
