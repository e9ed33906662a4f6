"""What an append stores, on both backends: every column as given, numbered in batch order,
each id once; and a lost race on an id leaves no gap in the sequence numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from auditrelay.config import Settings
from auditrelay.events import ValidEvent, validate_events
from auditrelay.store import Database, append_events, event_log, head_seq, read_after, upgrade_to_head
from tests.conftest import Databases
from tests.support import make_event


def test_an_append_stores_every_column_as_given_in_batch_order(db: Database) -> None:
    batch = validate_events(
        [
            make_event(action="document.create"),  # no entity: entity_path is NULL
            make_event(action="document.rename", details={"name": "Übersicht — 文書 ✓"}),
            make_event(action="document.delete", entity={"type": "doc", "id": 1, "path": "ns/é"}),
        ]
    )
    # Bytes the validator never produces (NUL, invalid UTF-8) still round-trip exactly.
    raw = ValidEvent(
        id="7d1e4b0c-0000-4000-8000-000000000001",
        action="blob.store",
        entity_path=None,
        occurred_at_ms=0,
        body=b"\x00\xff\xfe\\x00'\"{},NULL",
    )
    with db.writing() as conn:
        first = append_events(conn, [*batch, raw], None)
    with db.writing() as conn:
        second = append_events(conn, validate_events([make_event()]), "acme")
    assert (first.stored, first.duplicates, first.head) == (4, 0, 4)
    assert (second.stored, second.head) == (1, 5)
    with db.reading() as conn:
        stored = read_after(conn, 0, 10)
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5]
    assert [(e.org, e.action, e.entity_path, e.occurred_at_ms, e.body) for e in stored[:4]] == [
        (None, e.action, e.entity_path, e.occurred_at_ms, e.body) for e in [*batch, raw]
    ]
    assert [e.entity_path for e in stored[:4]] == [None, None, "ns/é", None]
    assert "Übersicht — 文書 ✓".encode() in stored[1].body
    assert stored[4].org == "acme"


def test_an_id_already_stored_or_repeated_in_the_batch_is_stored_once(db: Database) -> None:
    old = validate_events([make_event()])
    with db.writing() as conn:
        append_events(conn, old, None)
    a, b, c = validate_events([make_event(), make_event(), make_event()])
    # The second copy of `a` differs: the first one in the batch is the one kept.
    a_again = validate_events([make_event(id=a.id, action="document.other")])[0]
    with db.writing() as conn:
        result = append_events(conn, [a, old[0], b, a_again, c, b], None)
    assert (result.stored, result.duplicates, result.head) == (3, 3, 4)
    with db.writing() as conn:
        resent = append_events(conn, [c, a], None)
    assert (resent.stored, resent.duplicates, resent.head) == (0, 2, 4)
    with db.reading() as conn:
        stored = read_after(conn, 0, 10)
    assert [(e.seq, e.body) for e in stored] == [(1, old[0].body), (2, a.body), (3, b.body), (4, c.body)]


def test_an_id_committed_after_the_lookup_fails_the_append_without_a_gap(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = validate_events([make_event()])
    with db.writing() as conn:
        append_events(conn, taken, None)
    # As if another request committed `taken` between this append's lookup and its lock.
    monkeypatch.setattr(event_log, "_stored_ids_sqlite", lambda conn, batch: set())
    monkeypatch.setattr(event_log, "_stored_ids_postgresql", lambda conn, batch: set())
    with pytest.raises(IntegrityError), db.writing() as conn:
        append_events(conn, [*validate_events([make_event()]), *taken], None)
    monkeypatch.undo()
    with db.writing() as conn:
        retried = append_events(conn, validate_events([make_event()]), None)
    assert retried.head == 2
    with db.reading() as conn:
        assert head_seq(conn) == 2
        assert [e.seq for e in read_after(conn, 0, 10)] == [1, 2]


def test_the_duplicate_lookup_on_postgresql_keeps_to_the_unique_index_however_the_log_grows(
    databases: Databases, tmp_path: Path
) -> None:
    """The lookup is prepared once per connection, and its plan then kept: made while the
    log is empty and never analyzed, it must still be an index scan when the log is large
    (a sequential scan of the whole log for every batch was 44 ms at 300,000 events)."""
    db = Database(Settings(database_url=databases.url("postgresql"), data_dir=tmp_path))
    upgrade_to_head(db)
    batch = validate_events([make_event() for _ in range(50)])
    try:
        with db.writing() as conn:
            for _ in range(8):  # past the custom plans PostgreSQL tries before a generic one
                assert event_log._stored_ids_postgresql(conn, batch) == set()
                # Neither the setting nor the preparing reaches the statements that follow.
                assert conn.exec_driver_sql("SHOW enable_seqscan").scalar() == "on"
                assert conn.exec_driver_sql("SELECT 'not prepared'").scalar() == "not prepared"
            prepared = conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()
            assert len(prepared) == 1 and "not prepared" not in prepared[0], prepared
            conn.exec_driver_sql(
                "INSERT INTO events SELECT g, 'id-' || g, NULL, 'a.b', NULL, 1, 1, 'x'::bytea, NULL "
                "FROM generate_series(1, 50000) AS g"
            )
            assert event_log._stored_ids_postgresql(conn, batch) == set()
            (name,) = conn.exec_driver_sql(
                "SELECT name FROM pg_prepared_statements WHERE statement LIKE 'SELECT id, org FROM events%%'"
            ).one()
            conn.exec_driver_sql("SET LOCAL enable_seqscan = on")  # the plan kept must not need it
            plan = "\n".join(
                row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}('{{id-1,id-2}}')")
            )
            conn.rollback()
    finally:
        db.dispose()
    assert "ux_events_id_key" in plan and "Seq Scan" not in plan, plan
