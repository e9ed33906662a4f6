"""The delivery supervisor samples every destination's lag once a minute, not more."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from auditrelay.config import Settings
from auditrelay.delivery import supervisor as supervisor_module
from auditrelay.delivery.supervisor import DeliverySupervisor
from auditrelay.events import validate_events
from auditrelay.log import Wakeups
from auditrelay.security import SecretBox
from auditrelay.store import Database, DestinationRows, append_events, minute_history, upgrade_to_head
from tests.destinations.test_kinds import destination
from tests.support import make_event


class Clock:
    def __init__(self) -> None:
        self.now = 60 * 16_000.0  # the start of a minute

    def time(self) -> float:
        return self.now


def test_the_lag_is_sampled_once_a_minute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(data_dir=tmp_path)
    db = Database(settings)
    upgrade_to_head(db)
    rows = DestinationRows(SecretBox.from_settings("", tmp_path, may_generate=True))
    clock = Clock()
    monkeypatch.setattr(supervisor_module, "time", clock)
    with db.writing() as conn:
        rows.insert(conn, dataclasses.replace(destination("http"), id="d1", active=False), cursor=0)

    def latest_lag() -> int | None:
        with db.reading() as conn:
            return minute_history(conn, rows, "d1", None, 0)[-1].lag_events

    async def scenario() -> None:
        supervisor = DeliverySupervisor(db, rows, Wakeups(), settings)
        await supervisor.sample_lags()
        assert latest_lag() == 0
        with db.writing() as conn:
            append_events(conn, validate_events([make_event(), make_event()]), None)
        clock.now += 30  # the same minute: no second sample
        await supervisor.sample_lags()
        assert latest_lag() == 0
        clock.now += 30  # the next minute
        await supervisor.sample_lags()
        assert latest_lag() == 2

    try:
        asyncio.run(scenario())
    finally:
        db.dispose()
