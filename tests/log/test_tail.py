"""The shared tail returns exactly what the database would, from memory or not."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from auditrelay.config import Settings
from auditrelay.events import validate_events
from auditrelay.log import LogTail
from auditrelay.store import Database, append_events, read_after, upgrade_to_head
from tests.conftest import Databases
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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_reads_are_bounded_by_bytes_as_well_as_by_count(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    """Large events are read a few at a time, from the database and through the tail: the
    answer stops at the event that reaches the byte budget."""
    db = Database(
        Settings(database_url=databases.url(backend), data_dir=tmp_path, sqlite_synchronous="NORMAL")
    )
    upgrade_to_head(db)
    # Forty events of about 100 kB each, then ten small ones.
    big = [make_event(details={"pad": "x" * 100_000}) for _ in range(40)]
    with db.writing() as conn:
        append_events(conn, validate_events(big), None)
        append_events(conn, validate_events([make_event() for _ in range(10)]), None)
    with db.reading() as conn:
        everything = read_after(conn, 0, 1000)
        bounded = read_after(conn, 0, 1000, max_bytes=350_000)
        one = read_after(conn, 0, 1000, max_bytes=1)
        small = read_after(conn, 40, 1000, max_bytes=350_000)
    size = len(everything[0].body)
    assert len(everything) == 50 and size > 100_000
    # Events are ~100 kB: the fourth reaches 350 kB, and is the last.
    assert [e.seq for e in bounded] == [1, 2, 3, 4]
    # A bounded read (on PostgreSQL, rows in the binary format) gives the very same events.
    assert bounded == everything[:4] and small == everything[40:]
    assert [e.seq for e in one] == [1], "at least one event, however large"
    assert [e.seq for e in small] == list(range(41, 51)), "small events fill the count first"

    async def scenario() -> None:
        tail = LogTail(db, capacity=1000, chunk=100, capacity_bytes=1_000_000, chunk_bytes=500_000)
        first = await tail.read_after(0, 1000, max_bytes=350_000)
        assert [e.seq for e in first] == [1, 2, 3, 4]
        # The window never holds much more than its byte capacity, whatever was read.
        cursor = 0
        seen: list[int] = []
        while True:
            found = await tail.read_after(cursor, 1000, max_bytes=250_000)
            if not found:
                break
            assert sum(len(e.body) for e in found) < 250_000 + size
            assert tail._bytes <= 1_000_000 + size
            seen += [e.seq for e in found]
            cursor = found[-1].seq
        assert seen == list(range(1, 51)), "every event once, in order"

    try:
        asyncio.run(scenario())
    finally:
        db.dispose()
