"""Ingest requests of one process share transactions (the group commit), and each still gets
its own answer: the one it would get alone, in the order the group appended them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy import insert

from auditrelay.errors import RetryLater, ValidationError
from auditrelay.events import ValidEvent, validate_events
from auditrelay.log import IngestCommits, appends
from auditrelay.model import AppendResult
from auditrelay.store import (
    AppendRequest,
    Database,
    append_events,
    event_log,
    read_after,
    store_event_group,
)
from auditrelay.store.tables import orgs
from tests.support import make_event


def _events(n: int, **fields: object) -> list[ValidEvent]:
    return validate_events([make_event(**fields) for _ in range(n)])


def test_a_group_answers_each_request_as_if_appended_alone_in_order(db: Database) -> None:
    with db.writing() as conn:
        conn.execute(insert(orgs).values(name="acme", title="acme", created_at_ms=0))
    old = _events(1)
    with db.writing() as conn:
        append_events(conn, old, None)
    first = _events(2)
    # Re-sends `first[1]` as it is and `first[0]` with another body: the group's own rows
    # count as stored, as they would once `first` had committed alone.
    changed = validate_events([make_event(id=first[0].id, action="document.other")])[0]
    second = [first[1], changed, *_events(1)]
    unknown_org = _events(1, org="nobody")
    resend_old = [*old, *_events(1)]
    # Same id in another organization: another event.
    other_org = validate_events([make_event(id=first[1].id, org="acme")])

    outcomes = store_event_group(
        db,
        [
            AppendRequest(first, None),
            AppendRequest(second, None),
            AppendRequest(unknown_org, None),
            AppendRequest(resend_old, None, "tok"),
            AppendRequest(other_org, None),
        ],
    )

    a, b, refused, c, d = outcomes
    assert isinstance(a, AppendResult) and (a.stored, a.duplicates, a.head) == (2, 0, 3)
    assert isinstance(b, AppendResult) and (b.stored, b.duplicates, b.head) == (1, 2, 4)
    assert b.already_stored == (first[1].id, first[0].id) and b.conflicts == (first[0].id,)
    assert isinstance(refused, ValidationError), "an unknown organization refuses its request only"
    assert isinstance(c, AppendResult) and (c.stored, c.already_stored, c.head) == (1, (old[0].id,), 5)
    assert isinstance(d, AppendResult) and (d.stored, d.duplicates, d.head) == (1, 0, 6)
    with db.reading() as conn:
        stored = read_after(conn, 0, 10)
    assert [e.body for e in stored] == [
        old[0].body,
        first[0].body,
        first[1].body,
        second[2].body,
        resend_old[1].body,
        other_org[0].body,
    ]
    assert [e.org for e in stored] == [None] * 5 + ["acme"]


def test_a_failing_group_stores_each_request_alone(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _events(1)
    with db.writing() as conn:
        append_events(conn, taken, None)
    # As if another process committed `taken` between the group's lookups and its insert:
    # the unique index fails the whole transaction. Alone, the lookups see it stored.
    blind = {"calls": 2}
    real = {"sqlite": event_log._stored_ids_sqlite, "postgresql": event_log._stored_ids_postgresql}

    def lookup(dialect: str):  # type: ignore[no-untyped-def]
        def stored_ids(conn, batch):  # type: ignore[no-untyped-def]
            if blind["calls"]:
                blind["calls"] -= 1
                return set()
            return real[dialect](conn, batch)

        return stored_ids

    monkeypatch.setattr(event_log, "_stored_ids_sqlite", lookup("sqlite"))
    monkeypatch.setattr(event_log, "_stored_ids_postgresql", lookup("postgresql"))
    fresh = _events(2)
    racing = [*taken, *_events(1)]

    a, b = store_event_group(db, [AppendRequest(fresh, None), AppendRequest(racing, None)])

    assert isinstance(a, AppendResult) and (a.stored, a.head) == (2, 3)
    assert isinstance(b, AppendResult) and (b.stored, b.already_stored, b.head) == (1, (taken[0].id,), 4)
    with db.reading() as conn:
        assert [e.seq for e in read_after(conn, 0, 10)] == [1, 2, 3, 4], "no gap, nothing twice"


def test_requests_arriving_meanwhile_share_the_next_transaction(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups: list[int] = []
    real = appends.store_event_group

    def counting(db: Database, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
        groups.append(len(requests))
        return real(db, requests)

    monkeypatch.setattr(appends, "store_event_group", counting)
    batches = [_events(3) for _ in range(6)]

    async def scenario() -> list[AppendResult | BaseException]:
        commits = IngestCommits(db, group_events=12)
        # All seven are queued before the writer first runs: groups of at most 12 events,
        # and the one naming an unknown organization fails only itself.
        return await asyncio.gather(
            *(commits.store(batch, None, None) for batch in batches),
            commits.store(_events(1, org="nobody"), None, None),
            return_exceptions=True,
        )

    *answers, refused = asyncio.run(scenario())
    assert groups == [4, 3]
    assert isinstance(refused, ValidationError)
    assert [a.head for a in answers if isinstance(a, AppendResult)] == [3, 6, 9, 12, 15, 18]
    with db.reading() as conn:
        assert [e.body for e in read_after(conn, 0, 100)] == [e.body for b in batches for e in b]


def test_a_request_whose_ids_keep_racing_is_refused_alone(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _events(1)
    with db.writing() as conn:
        append_events(conn, taken, None)
    monkeypatch.setattr(event_log, "_stored_ids_sqlite", lambda conn, batch: set())
    monkeypatch.setattr(event_log, "_stored_ids_postgresql", lambda conn, batch: set())

    async def scenario() -> list[AppendResult | BaseException]:
        commits = IngestCommits(db)
        return await asyncio.gather(
            commits.store(_events(1), None, None),
            commits.store(taken, None, None),
            commits.store(_events(1), None, None),
            return_exceptions=True,
        )

    a, racing, c = asyncio.run(scenario())
    assert isinstance(racing, RetryLater)
    assert isinstance(a, AppendResult) and isinstance(c, AppendResult)
    assert (a.head, c.head) == (2, 3)
