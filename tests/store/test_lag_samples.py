"""The lag sampled once a minute beside the events delivered, on both backends: the
history a destination's page charts."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from auditrelay.config import Settings
from auditrelay.errors import NotFound
from auditrelay.events import validate_events
from auditrelay.model import MinuteFigures
from auditrelay.security import SecretBox
from auditrelay.store import (
    Database,
    DestinationRows,
    append_events,
    minute_history,
    now_ms,
    sample_lags,
    upgrade_to_head,
)
from auditrelay.store.delivery_rows import MINUTE_MS, commit_progress
from tests.conftest import Databases
from tests.destinations.test_kinds import destination
from tests.support import make_event


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, databases: Databases, tmp_path: Path) -> Iterator[Database]:
    database = Database(Settings(database_url=databases.url(request.param), data_dir=tmp_path))
    upgrade_to_head(database)
    yield database
    database.dispose()


@pytest.fixture
def rows(tmp_path: Path) -> DestinationRows:
    return DestinationRows(SecretBox.from_settings("", tmp_path, may_generate=True))


def test_a_sample_records_the_lag_and_keeps_the_minutes_deliveries(
    db: Database, rows: DestinationRows
) -> None:
    with db.writing() as conn:
        rows.insert(conn, dataclasses.replace(destination("http"), id="d1"), cursor=0)
        append_events(conn, validate_events([make_event() for _ in range(3)]), None)
    start = now_ms()
    # The sample is 5 s on: in the next minute when the test starts in a minute's last 5 s.
    sampled_at = start + 5_000
    minute = start // MINUTE_MS * MINUTE_MS
    with db.writing() as conn:
        assert sample_lags(conn, rows, at_ms=sampled_at) == 1
    with db.reading() as conn:
        (first,) = minute_history(conn, rows, "d1", None, minute)
    assert (first.minute_ms, first.delivered, first.lag_events) == (sampled_at // MINUTE_MS * MINUTE_MS, 0, 3)
    assert first.lag_ms is not None and 5_000 <= first.lag_ms < 65_000

    # Two events delivered in the same minute, then sampled again: the count is kept, the
    # lag replaced by the later sample's.
    with db.writing() as conn:
        commit_progress(conn, "d1", cursor=2, delivered=2)
        sample_lags(conn, rows, at_ms=max(now_ms(), sampled_at))
    with db.reading() as conn:
        figures = minute_history(conn, rows, "d1", None, minute)
    if len(figures) == 1:  # the minute did not turn between the two samples
        assert (figures[0].delivered, figures[0].lag_events) == (2, 1)
    else:
        assert sum(f.delivered for f in figures) == 2 and figures[-1].lag_events == 1


def test_minutes_without_a_sample_have_no_lag_and_caught_up_is_zero(
    db: Database, rows: DestinationRows
) -> None:
    with db.writing() as conn:
        rows.insert(conn, dataclasses.replace(destination("http"), id="d1"), cursor=0)
        head = append_events(conn, validate_events([make_event()]), None).head
        commit_progress(conn, "d1", cursor=head, delivered=1)  # no sample taken
    since = now_ms() // MINUTE_MS * MINUTE_MS - MINUTE_MS
    with db.reading() as conn:
        figures = minute_history(conn, rows, "d1", None, since)
    assert [(f.delivered, f.lag_events, f.lag_ms) for f in figures] == [(1, None, None)]
    with db.writing() as conn:
        sample_lags(conn, rows)
    with db.reading() as conn:
        latest = minute_history(conn, rows, "d1", None, since)[-1]
    assert (latest.lag_events, latest.lag_ms) == (0, 0)
    assert isinstance(latest, MinuteFigures)


def test_another_organizations_history_is_not_found(db: Database, rows: DestinationRows) -> None:
    with db.writing() as conn:
        rows.insert(conn, dataclasses.replace(destination("http"), id="d1"), cursor=0)
        sample_lags(conn, rows)
    with db.reading() as conn, pytest.raises(NotFound):
        minute_history(conn, rows, "d1", "some-org", 0)
