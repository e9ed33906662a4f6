"""The log read newest first (the panel's Events page), on SQLite and PostgreSQL: pages by
sequence cursor, every filter, the bounded scan window, the count of newer events."""

from __future__ import annotations

from typing import Any

from auditrelay.events import validate_events
from auditrelay.store import (
    Database,
    EventQuery,
    append_events,
    count_newer,
    event_at,
    newest_events,
)
from tests.support import make_event


def store(db: Database, *events: dict[str, Any]) -> None:
    with db.writing() as conn:
        append_events(conn, validate_events(list(events)), None)


def seqs(
    db: Database, query: EventQuery, before: int | None = None, **kw: Any
) -> tuple[list[int], int | None]:
    with db.reading() as conn:
        page = newest_events(conn, query, before, **kw)
    return [e.seq for e in page.events], page.older


def user(uid: int, name: str, email: str) -> dict[str, Any]:
    return {"type": "user", "user": {"id": uid, "name": name, "email": email}}


def test_pages_walk_backwards_by_seq_cursor(db: Database) -> None:
    store(db, *[make_event() for _ in range(7)])
    assert seqs(db, EventQuery(), limit=3) == ([7, 6, 5], 5)
    assert seqs(db, EventQuery(), 5, limit=3) == ([4, 3, 2], 2)
    assert seqs(db, EventQuery(), 2, limit=3) == ([1], None)
    # A page that ends exactly on the oldest event has nothing older.
    assert seqs(db, EventQuery(), 4, limit=3) == ([3, 2, 1], None)


def test_each_filter_narrows(db: Database) -> None:
    store(
        db,
        make_event(action="document.create", actor=user(1, "Ann", "ann@example.com"), org="acme"),
        make_event(action="document.acl.update", actor=user(2, "Bob_%", "bob@example.com")),
        make_event(action="documents.x", actor={"type": "system", "name": "cron"}),
        make_event(action="user.login", entity={"type": "p", "id": 1, "path": "acme/web/api"}),
        make_event(action="user.login", entity={"type": "p", "id": 2, "path": "acme/webshop"}),
        make_event(timestamp="2020-01-01T00:00:00Z"),
        make_event(timestamp="2021-06-01T00:00:00Z", actor=user(147, "Ann", "x@example.com")),
    )
    assert seqs(db, EventQuery(action="document.create"))[0] == [7, 6, 1]
    assert seqs(db, EventQuery(action="document.*"))[0] == [7, 6, 2, 1]
    assert seqs(db, EventQuery(org="acme"))[0] == [1]
    assert seqs(db, EventQuery(actor="Ann"))[0] == [7, 1]
    assert seqs(db, EventQuery(actor="ann@example.com"))[0] == [1]
    assert seqs(db, EventQuery(actor="147"))[0] == [7]  # a number in the body, typed as text
    assert seqs(db, EventQuery(actor="Bob_%"))[0] == [2]  # LIKE's wildcards are plain characters
    assert seqs(db, EventQuery(actor="Bob"))[0] == []  # exact, not a substring
    assert seqs(db, EventQuery(actor="cron"))[0] == [3]
    assert seqs(db, EventQuery(entity_path="acme/web"))[0] == [4]  # whole segments
    assert seqs(db, EventQuery(entity_path="acme"))[0] == [5, 4]
    assert seqs(db, EventQuery(since_ms=1577836800000, until_ms=1577836800000))[0] == [6]
    assert seqs(db, EventQuery(until_ms=1609459200000))[0] == [6]
    assert seqs(db, EventQuery(since_ms=1609459200000, until_ms=1700000000000))[0] == [7]
    assert seqs(db, EventQuery(action="user.login", entity_path="acme/webshop"))[0] == [5]


def test_prefixes_match_case_and_wildcards_as_typed_on_both_stores(db: Database) -> None:
    """SQLite's LIKE ignores ASCII case where PostgreSQL's does not: prefixes are compared
    as leading characters, the same on both."""
    store(
        db,
        make_event(entity={"type": "p", "id": 1, "path": "Docs/A/x"}),
        make_event(entity={"type": "p", "id": 2, "path": "docs/a/x"}),
        make_event(entity={"type": "p", "id": 3, "path": "docs/a_/x"}),
        make_event(action="doc_x.create"),
        make_event(action="docax.create"),
    )
    assert seqs(db, EventQuery(entity_path="docs/a"))[0] == [2]
    assert seqs(db, EventQuery(entity_path="Docs/A"))[0] == [1]
    assert seqs(db, EventQuery(entity_path="docs/a_"))[0] == [3]
    assert seqs(db, EventQuery(action="doc_x.*"))[0] == [4]


def test_a_page_looks_at_a_bounded_window_and_says_where_to_go_on(db: Database) -> None:
    store(db, make_event(action="rare.thing"), *[make_event() for _ in range(30)])
    # 31 events, a window of 10: the rare event is three pages further down.
    assert seqs(db, EventQuery(action="rare.thing"), window=10) == ([], 22)
    assert seqs(db, EventQuery(action="rare.thing"), 22, window=10) == ([], 12)
    assert seqs(db, EventQuery(action="rare.thing"), 12, window=10) == ([], 2)
    assert seqs(db, EventQuery(action="rare.thing"), 2, window=10) == ([1], None)


def test_newer_events_are_counted_with_the_filters(db: Database) -> None:
    store(db, *[make_event() for _ in range(3)])
    with db.reading() as conn:
        assert count_newer(conn, EventQuery(), 3) == (0, False)
    store(
        db, make_event(), make_event(action="user.login"), make_event(actor=user(9, "Zed", "z@example.com"))
    )
    with db.reading() as conn:
        assert count_newer(conn, EventQuery(), 3) == (3, False)
        assert count_newer(conn, EventQuery(action="user.login"), 3) == (1, False)
        assert count_newer(conn, EventQuery(actor="Zed"), 3) == (1, False)
        assert count_newer(conn, EventQuery(), 3, window=2) == (2, True)


def test_one_event_is_read_only_in_its_organization(db: Database) -> None:
    store(db, make_event(org="acme"), make_event())
    with db.reading() as conn:
        found = event_at(conn, 1, "acme")
        assert found is not None and found.org == "acme" and found.action == "document.create"
        assert event_at(conn, 2, "acme") is None
        assert event_at(conn, 2, None) is not None
        assert event_at(conn, 99, None) is None
