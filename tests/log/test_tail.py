"""The shared tail returns exactly what the database would, from memory or not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from auditrelay.config import Settings
from auditrelay.events import validate_events
from auditrelay.log import LogTail
from auditrelay.store import Database, append_events, read_after, upgrade_to_head
from tests.support import make_event


def test_reads_through_the_tail_equal_reads_from_the_database(tmp_path: Path) -> None:
    db = Database(Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL"))
    upgrade_to_head(db)

    def append(count: int) -> None:
        with db.writing() as conn:
            append_events(conn, validate_events([make_event() for _ in range(count)]), None)

    def direct(cursor: int, limit: int) -> list[int]:
        with db.reading() as conn:
            return [e.seq for e in read_after(conn, cursor, limit)]

    async def scenario() -> None:
        tail = LogTail(db, capacity=50, chunk=20)
        append(30)
        # Cursors inside, before, at and beyond the window, while the log grows.
        for cursor, limit in [(0, 10), (10, 100), (25, 10), (30, 5), (5, 7)]:
            assert [e.seq for e in await tail.read_after(cursor, limit)] == direct(cursor, limit)
        append(100)
        for cursor, limit in [(30, 10), (40, 30), (60, 100), (129, 10), (130, 10), (1, 3), (100, 1000)]:
            assert [e.seq for e in await tail.read_after(cursor, limit)] == direct(cursor, limit)
        # Many loops at the head at once: one database read, the same answer for all.
        append(5)
        answers = await asyncio.gather(*(tail.read_after(130, 10) for _ in range(20)))
        assert all([e.seq for e in a] == [131, 132, 133, 134, 135] for a in answers)

    asyncio.run(scenario())
    db.dispose()


def test_a_cursor_below_what_retention_kept_jumps_to_the_oldest_remaining_event(tmp_path: Path) -> None:
    from sqlalchemy import delete

    from auditrelay.store.tables import events

    db = Database(Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL"))
    upgrade_to_head(db)
    with db.writing() as conn:
        append_events(conn, validate_events([make_event() for _ in range(50)]), None)
        conn.execute(delete(events).where(events.c.seq <= 30))
    with db.reading() as conn:
        assert [e.seq for e in read_after(conn, 0, 10)] == list(range(31, 41))
        assert [e.seq for e in read_after(conn, 25, 100)] == list(range(31, 51))
        assert read_after(conn, 50, 10) == []
    db.dispose()
