"""Run delivery in this process while it holds the delivery lock; signal it otherwise.

Every process serves ingest and the admin API. The one that holds the `DeliveryLock` also
runs the delivery supervisor, retention, and the receiving end of the signals (the UNIX
socket on SQLite, LISTEN on PostgreSQL). The others only send signals. Each process tries
for the lock at start and every `resync_seconds` after, so when the holder dies another
takes over within about that long; the new holder's loops resume from the committed
cursors, so a takeover re-sends at most the batches that were in flight (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from auditrelay.cluster.lock import DeliveryLock, FileLock
from auditrelay.cluster.signals import DESTINATIONS, EVENTS, SignalReceiver, SignalSender
from auditrelay.config import Settings
from auditrelay.delivery import DeliverySupervisor
from auditrelay.log import Wakeups, run_retention
from auditrelay.store import (
    CHANNEL,
    DESTINATIONS_CHANNEL,
    Database,
    DestinationRows,
    PostgresAdvisoryLock,
    PostgresListener,
    notify_destinations_changed,
)

log = logging.getLogger(__name__)


class DeliveryCoordinator:
    def __init__(self, db: Database, rows: DestinationRows, settings: Settings) -> None:
        self._db = db
        self._rows = rows
        self._settings = settings
        self.wakeups = Wakeups(relay=self._relay_events)
        self._lock: DeliveryLock
        self._sender: SignalSender | None = None
        if db.is_postgresql:
            self._conninfo = db.conninfo
            self._lock = PostgresAdvisoryLock(self._conninfo)
        else:
            base = db.sqlite_path
            self._lock = FileLock(base.with_name(base.name + ".delivery-lock"))
            self._signal_path = base.with_name(base.name + ".signals")
            self._sender = SignalSender(self._signal_path)
        self._supervisor: DeliverySupervisor | None = None
        self._retention: asyncio.Task[None] | None = None
        self._receiver: SignalReceiver | None = None
        self._listener: PostgresListener | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def leading(self) -> bool:
        return self._supervisor is not None

    async def start(self) -> None:
        """Try for the lock now (a single process starts delivering before it answers), then
        keep trying in the background."""
        await self._try_to_lead()
        self._task = asyncio.create_task(self._watch(), name="delivery-lock")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._step_down()
        if self._sender is not None:
            self._sender.close()

    def destinations_changed(self) -> None:
        """A destination was created, edited, paused, resumed or deleted by this process."""
        if self._supervisor is not None:
            self._supervisor.poke()
        elif self._sender is not None:
            self._sender.send(DESTINATIONS)
        else:
            # PostgreSQL: tell whichever process delivers, wherever it runs.
            task = asyncio.ensure_future(self._db.write(notify_destinations_changed))
            task.add_done_callback(_log_failure)

    # -- the lock -------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._settings.resync_seconds)
            try:
                if self.leading:
                    if not await asyncio.to_thread(self._lock.still_held):
                        log.error("process %d lost the delivery lock; stopping delivery here", os.getpid())
                        await self._step_down()
                else:
                    await self._try_to_lead()
            except Exception:
                log.exception("delivery lock check failed; trying again shortly")

    async def _try_to_lead(self) -> None:
        if not await asyncio.to_thread(self._lock.try_acquire):
            return
        log.info("process %d holds the delivery lock: it runs delivery and retention", os.getpid())
        supervisor = DeliverySupervisor(self._db, self._rows, self.wakeups, self._settings)
        try:
            if self._db.is_postgresql:
                self._listener = PostgresListener(
                    self._conninfo,
                    {CHANNEL: self.wakeups.wake_local, DESTINATIONS_CHANNEL: supervisor.poke},
                    asyncio.get_running_loop(),
                )
                self._listener.start()
            else:
                self._receiver = SignalReceiver(self._signal_path, lambda s: self._on_signal(supervisor, s))
                await self._receiver.start()
            await supervisor.start()
        except BaseException:
            await self._stop_parts()
            await asyncio.to_thread(self._lock.release)
            raise
        self._supervisor = supervisor
        self._retention = asyncio.create_task(run_retention(self._db, self._settings), name="retention")

    async def _step_down(self) -> None:
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await supervisor.stop()
        await self._stop_parts()
        await asyncio.to_thread(self._lock.release)

    async def _stop_parts(self) -> None:
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._retention
            self._retention = None
        if self._listener is not None:
            await asyncio.to_thread(self._listener.stop)
            self._listener = None
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None

    # -- signals --------------------------------------------------------------------------

    def _relay_events(self) -> None:
        # On PostgreSQL the append's own NOTIFY reaches the delivering process.
        if self._sender is not None and not self.leading:
            self._sender.send(EVENTS)

    def _on_signal(self, supervisor: DeliverySupervisor, signal: bytes) -> None:
        if signal == EVENTS:
            self.wakeups.wake_local()
        elif signal == DESTINATIONS:
            supervisor.poke()


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("could not signal a destination change: %s", future.exception())
