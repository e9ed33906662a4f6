"""Cursor commits of many loops share transactions, and one bad commit fails only itself."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select

from auditrelay.config import Settings
from auditrelay.delivery import CursorCommits
from auditrelay.model import AttemptRecord
from auditrelay.security import SecretBox
from auditrelay.store import Database, DestinationRows, upgrade_to_head
from auditrelay.store.tables import delivery_attempts, destination_status
from tests.conftest import Databases
from tests.destinations.test_kinds import destination


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_commits_land_together_and_a_failing_one_fails_alone(
    backend: str, databases: Databases, tmp_path: Path
) -> None:
    db = Database(Settings(database_url=databases.url(backend), data_dir=tmp_path))
    upgrade_to_head(db)
    rows = DestinationRows(SecretBox.from_settings("", tmp_path, may_generate=True))
    ids = [f"d{n}" for n in range(20)]
    with db.writing() as conn:
        for destination_id in ids:
            rows.insert(conn, dataclasses.replace(destination("http"), id=destination_id), 0)
    record = AttemptRecord(1, 1, 10, 200, 1.0, "delivered", None, False)
    transactions = 0
    original_write = db.write

    async def counting_write(fn, *args):  # type: ignore[no-untyped-def]
        nonlocal transactions
        transactions += 1
        return await original_write(fn, *args)

    db.write = counting_write  # type: ignore[method-assign]

    async def scenario(cursor: int, broken: bool) -> list[BaseException | None]:
        writer = CursorCommits(db)
        commits = [writer.commit(d, cursor, 5, [record], trim=False) for d in ids]
        if broken:  # a cursor no database column can hold breaks its transaction
            commits.append(writer.commit(ids[0], 2**70, 5, [record], trim=False))
        return await asyncio.gather(*commits, return_exceptions=True)

    def stored() -> tuple[list[tuple[int, int]], int]:
        with db.reading() as conn:
            status = conn.execute(select(destination_status.c.cursor, destination_status.c.delivered_total))
            attempts = conn.execute(select(func.count()).select_from(delivery_attempts)).scalar_one()
            return sorted(tuple(row) for row in status), attempts

    try:
        assert asyncio.run(scenario(5, broken=False)) == [None] * 20
        assert stored() == ([(5, 5)] * 20, 20)
        assert transactions == 1, "twenty commits queued together share one transaction"

        transactions = 0
        results = asyncio.run(scenario(9, broken=True))
        assert results[:-1] == [None] * 20
        assert isinstance(results[-1], Exception)
        assert stored() == ([(9, 10)] * 20, 40), "the failing commit took nothing else down"
        assert transactions == 1 + 21, "the failed group was retried one commit at a time"
    finally:
        db.dispose()
