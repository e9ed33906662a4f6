"""`Database.read_latest`: the log tail's reads, outside a transaction on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Connection

from auditrelay.events import validate_events
from auditrelay.store import Database, append_events, read_after
from tests.support import make_event


def test_a_read_outside_a_transaction_sees_each_commit_and_leaves_no_transaction_open(db: Database) -> None:
    def read(conn: Connection, cursor: int) -> tuple[list[int], Any]:
        seqs = [e.seq for e in read_after(conn, cursor, 100)]
        dbapi = conn.connection.dbapi_connection
        # psycopg: IDLE (0) after a statement in autocommit, INTRANS (2) inside a transaction.
        status = dbapi.info.transaction_status if db.is_postgresql else dbapi.in_transaction  # type: ignore[union-attr]
        return seqs, status

    async def scenario() -> None:
        for expected in ([1, 2], [3]):
            with db.writing() as conn:
                append_events(conn, validate_events([make_event() for _ in expected]), None)
            seqs, status = await db.read_latest(read, expected[0] - 1)
            assert seqs == expected
            if db.is_postgresql:
                assert status == 0, "a transaction was opened: BEGIN and ROLLBACK cost two round trips"

    asyncio.run(scenario())
