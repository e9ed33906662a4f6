"""Appends on PostgreSQL wake the loops of every process through LISTEN/NOTIFY."""

from __future__ import annotations

import asyncio

import psycopg

from auditrelay.config import Settings
from auditrelay.events import validate_events
from auditrelay.log import Wakeups
from auditrelay.store import CHANNEL, Database, PostgresListener, append_events, upgrade_to_head
from tests.conftest import Databases
from tests.support import make_event


def test_an_append_in_another_connection_wakes_a_listening_process(databases: Databases, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = databases.url("postgresql")
    db = Database(Settings(database_url=url, data_dir=tmp_path))
    upgrade_to_head(db)

    async def scenario() -> bool:
        wakeups = Wakeups()
        flag = wakeups.subscribe()
        listener = PostgresListener(url, {CHANNEL: wakeups.wake_local}, asyncio.get_running_loop())
        listener.start()
        try:
            # Wait for the listener itself to say it LISTENs, not for a guess of how long it takes.
            assert await asyncio.to_thread(listener.ready.wait, 10), "the listener never started listening"
            flag.clear()
            with db.writing() as conn:  # as another process would: no direct notify() call
                append_events(conn, validate_events([make_event()]), None)
            await asyncio.wait_for(flag.wait(), timeout=5)
            return True
        finally:
            listener.stop()

    try:
        assert asyncio.run(scenario())
    finally:
        db.dispose()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT head FROM log_head").fetchone() == (1,)
