"""Late commits: with many concurrent appenders, a reader following a cursor never skips an
event that commits after the reader has seen a larger sequence number."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from auditrelay.config import Settings
from auditrelay.events import validate_events
from auditrelay.store import Database, append_events, read_after, upgrade_to_head
from tests.conftest import Databases
from tests.support import make_event

WRITERS = 8
APPENDS_PER_WRITER = 40
EVENTS_PER_APPEND = 5


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_cursor_reader_sees_every_event_of_concurrent_appends(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    db = Database(
        Settings(database_url=databases.url(backend), data_dir=tmp_path, sqlite_synchronous="NORMAL")
    )
    upgrade_to_head(db)
    written: list[str] = []
    written_lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(APPENDS_PER_WRITER):
                batch = validate_events([make_event() for _ in range(EVENTS_PER_APPEND)])
                with db.writing() as conn:
                    append_events(conn, batch, None)
                with written_lock:
                    written.extend(e.id for e in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    seen: list[int] = []
    seen_ids: list[str] = []

    def reader() -> None:
        cursor = 0
        # Read exactly as a delivery loop does: after the cursor, move it to the last seen.
        while True:
            finished = done.is_set()
            with db.reading() as conn:
                batch = read_after(conn, cursor, 7)
            for event in batch:
                seen.append(event.seq)
                seen_ids.append(event.body[7:43].decode())
            if batch:
                cursor = batch[-1].seq
            elif finished:
                return

    threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
    follow = threading.Thread(target=reader)
    follow.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    follow.join(timeout=60)
    db.dispose()
    assert not errors, errors
    total = WRITERS * APPENDS_PER_WRITER * EVENTS_PER_APPEND
    assert len(written) == total
    # No gap, no skip, no repeat: the reader saw 1..total in order, i.e. every event.
    assert seen == list(range(1, total + 1))
    assert sorted(seen_ids) == sorted(written)
