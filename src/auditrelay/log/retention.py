"""The retention job: a pass now and then every `retention_interval_seconds`.

What a pass removes, and why it never removes what a destination still owes, is in
`store.purge`; this only schedules it, in the process that holds the delivery lock.
"""

from __future__ import annotations

import asyncio
import logging

from auditrelay.config import Settings
from auditrelay.store import Database, purge

log = logging.getLogger(__name__)


async def run_retention(db: Database, settings: Settings) -> None:
    """Purge now and then every `retention_interval_seconds`, until cancelled."""
    while True:
        try:
            await db.run(purge, db, settings)
        except Exception:
            log.exception("retention pass failed; trying again at the next interval")
        await asyncio.sleep(settings.retention_interval_seconds)
