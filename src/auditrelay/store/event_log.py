"""SQL of the event log.

Ordering guarantee: every append locks the single `log_head` row, takes the next sequence
numbers from it and releases the lock at commit. Sequence numbers are therefore handed out
in commit order and without gaps, on SQLite (one writer) and on PostgreSQL (row lock held to
commit) alike, so a reader that has seen `seq = n` has seen every event with a smaller
`seq`, and a cursor can never pass an event that commits later. The cost is that appends are
serialised: the lock is held from the numbering to the commit, a few milliseconds for a
batch (on PostgreSQL, numbering and insert are one statement; on SQLite, an UPDATE and an
`executemany`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from auditrelay.errors import FieldError, RetryLater, ValidationError
from auditrelay.events import ValidEvent
from auditrelay.model import AppendResult, StoredEvent
from auditrelay.store.database import BINARY_RESULTS, PREPARED, Database
from auditrelay.store.notifications import CHANNEL
from auditrelay.store.tables import events, log_head, orgs

log = logging.getLogger(__name__)

#: Bound the IN (...) list used to find already-stored ids.
_ID_LOOKUP_CHUNK = 500
#: A concurrent request storing the same id makes an append fail on the unique index; it is
#: then retried, and finds the id stored.
APPEND_ATTEMPTS = 3


def store_events(
    db: Database, batch: Sequence[ValidEvent], org: str | None, token_id: str | None = None
) -> AppendResult:
    """Append `batch` in a transaction of its own (blocking; run it with `db.run`).

    Retried when another request committed one of these ids between the duplicate lookup and
    the insert: the retry finds it stored and skips it.
    """
    for _attempt in range(APPEND_ATTEMPTS):
        try:
            with db.writing() as conn:
                _refuse_unknown_orgs(conn, batch, org)
                return append_events(conn, batch, org, token_id)
        except IntegrityError:
            continue
    raise RetryLater(
        "other requests kept storing these event ids at the same moment; nothing was stored, retry"
    )


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One ingest request's events, as `store_event_group` takes them."""

    batch: Sequence[ValidEvent]
    org: str | None
    token_id: str | None = None


def store_event_group(db: Database, requests: Sequence[AppendRequest]) -> list[AppendResult | Exception]:
    """Append several requests' batches in one transaction and one commit (the group commit
    of ingest; blocking, run it with `db.run`), each request's outcome in its place.

    The requests are appended one after another, exactly as if each had its own transaction
    in that order: a request re-sending an id that an earlier one of the group stores finds
    it stored (the transaction sees its own rows), and its conflicts are found the same way.
    A request naming an unknown organization is refused before anything of it is written,
    and the others go on. Any other failure (another process committing one of these ids
    meanwhile, the database failing, the commit failing) stores nothing of the group: each
    request is then stored alone, with `store_events`' retries, so one request's trouble
    never becomes another's answer. Nothing is answered before the commit that holds it.
    """
    if len(requests) == 1:
        return [_store_alone(db, requests[0])]
    try:
        outcomes: list[AppendResult | Exception] = []
        with db.writing() as conn:
            for request in requests:
                try:
                    _refuse_unknown_orgs(conn, request.batch, request.org)
                except ValidationError as exc:
                    outcomes.append(exc)
                    continue
                outcomes.append(append_events(conn, request.batch, request.org, request.token_id))
        return outcomes
    except Exception:
        # Nothing of the group was stored (the transaction rolled back): one at a time.
        log.info(
            "a group of %d ingest requests failed together; storing each alone", len(requests), exc_info=True
        )
    return [_store_alone(db, request) for request in requests]


def _store_alone(db: Database, request: AppendRequest) -> AppendResult | Exception:
    try:
        return store_events(db, request.batch, request.org, request.token_id)
    except Exception as exc:
        return exc


def _refuse_unknown_orgs(conn: Connection, batch: Sequence[ValidEvent], sender_org: str | None) -> None:
    """422 naming each event whose `org` is no organization. The sender's own organization
    needs no lookup: its token exists, and removing an organization revokes its tokens."""
    named = {e.org for e in batch if e.org is not None and e.org != sender_org}
    if not named:
        return
    known = set(conn.execute(select(orgs.c.name).where(orgs.c.name.in_(sorted(named)))).scalars())
    errors = [
        FieldError("org", f"no organization is named {e.org!r}", index)
        for index, e in enumerate(batch)
        if e.org is not None and e.org != sender_org and e.org not in known
    ]
    if errors:
        raise ValidationError(
            f"{len(errors)} event(s) name an unknown organization; nothing was stored", errors
        )


def append_events(
    conn: Connection, batch: Sequence[ValidEvent], org: str | None = None, token_id: str | None = None
) -> AppendResult:
    """Store the events not stored yet, in one transaction (the caller's), in order.

    Each records the token that sent it: its own `token_id` (the relay's audit events carry
    the acting token) or else `token_id`, the sender's; and its organization: its own
    `org` or else `org`.

    An event whose id is already in the log for its organization (or earlier in this batch)
    is skipped: the producer retried, and the log keeps one copy. Another organization's
    event with the same id is another event. Duplicates are looked up *before* the log
    lock is taken, so the lock is held only for the insert and the commit; if another
    transaction commits one of these ids in between, the unique index raises
    `IntegrityError` and `store_events` retries on a fresh transaction.
    """
    if conn.dialect.name == "postgresql":
        stored_ids, append = _stored_ids_postgresql, _append_postgresql
    else:
        stored_ids, append = _stored_ids_sqlite, _append_sqlite
    already = stored_ids(conn, batch)
    # Bodies to compare re-sent events with: the stored ones, then this batch's own.
    earlier = _stored_bodies(conn, already) if already else {}
    fresh: list[tuple[ValidEvent, str | None]] = []
    repeated: list[tuple[ValidEvent, bytes]] = []
    for event in batch:
        key = (event.id, event.org if event.org is not None else org)
        if key in already:
            repeated.append((event, earlier[key]))
        else:
            already.add(key)
            earlier[key] = event.body
            fresh.append((event, key[1]))
    ids = tuple(e.id for e, _ in repeated)
    conflicts = tuple(e.id for e, stored in repeated if e.differs_from(stored))
    if not fresh:
        return AppendResult(0, len(batch), head_seq(conn), ids, conflicts)
    head = append(conn, fresh, int(time.time() * 1000), token_id)
    return AppendResult(len(fresh), len(repeated), head, ids, conflicts)


#: An event's identity in the log: its id within its organization (None: the instance's).
EventKey = tuple[str, str | None]


def _stored_bodies(conn: Connection, keys: set[EventKey]) -> dict[EventKey, bytes]:
    """The stored bodies of these events (only read when a batch re-sends some: rare)."""
    found: dict[EventKey, bytes] = {}
    wanted = sorted({event_id for event_id, _ in keys})
    for start in range(0, len(wanted), _ID_LOOKUP_CHUNK):
        chunk = wanted[start : start + _ID_LOOKUP_CHUNK]
        query = select(events.c.id, events.c.org, events.c.body).where(events.c.id.in_(chunk))
        for row in conn.execute(query):
            if (row.id, row.org) in keys:
                found[(row.id, row.org)] = bytes(row.body)
    return found


_COLUMNS = "seq, id, org, action, entity_path, occurred_at_ms, received_at_ms, body, token_id"


_INSERT_SQLITE = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join(['?'] * 9)})"


# The batch's ids travel as one JSON array parameter: one fixed statement (prepared once,
# kept in the driver's statement cache) whatever the batch's size, where an `IN (?, ?, ...)`
# list is a new statement to compile for each size, by SQLAlchemy and by SQLite.
_STORED_IDS_SQLITE = "SELECT id, org FROM events WHERE id IN (SELECT value FROM json_each(?))"


def _stored_ids_sqlite(conn: Connection, batch: Sequence[ValidEvent]) -> set[EventKey]:
    """(id, org) of the stored events sharing an id with the batch, whatever their
    organization (few: an id is random)."""
    ids = orjson.dumps([event.id for event in batch]).decode()
    return {(row[0], row[1]) for row in conn.exec_driver_sql(_STORED_IDS_SQLITE, (ids,))}


def _append_sqlite(
    conn: Connection, fresh: list[tuple[ValidEvent, str | None]], now_ms: int, token_id: str | None
) -> int:
    # One statement takes the log lock (the row lock, held until commit) and the sequence
    # numbers: sequence order is commit order.
    head: int = conn.execute(
        update(log_head)
        .where(log_head.c.id == 1)
        .values(head=log_head.c.head + len(fresh))
        .returning(log_head.c.head)
    ).scalar_one()
    first = head - len(fresh) + 1
    rows = [
        (
            first + n,
            e.id,
            org,
            e.action,
            e.entity_path,
            e.occurred_at_ms,
            now_ms,
            e.body,
            e.token_id or token_id,
        )
        for n, (e, org) in enumerate(fresh)
    ]
    # Straight to the driver's executemany: the SQL is fixed, and SQLAlchemy's per-row
    # parameter processing costs more than SQLite itself on this hot path.
    conn.exec_driver_sql(_INSERT_SQLITE, rows)
    return head


# PostgreSQL: each column of the batch travels as one array parameter, in psycopg's binary
# format (`%b`: bytes as they are, not hex-escaped in an array literal). One statement for a
# whole batch costs PostgreSQL one parse and one plan instead of one per row.
_STORED_IDS_POSTGRESQL = "SELECT id, org FROM events WHERE id = ANY(%b::text[])"
# The lookup must go through the unique index whatever the statistics say: a table never
# analyzed (autovacuum off, or not yet run) had PostgreSQL scan the whole log for every
# batch, 44 ms at 300,000 events, and the lookup's plan, prepared once (`PREPARED`), would
# keep that choice for good. For the lookup only: set back at once, so the statements that
# follow in the transaction (the admin's writes too append events) plan as usual.
_NO_SEQUENTIAL_SCAN = "SET LOCAL enable_seqscan = off"
_SEQUENTIAL_SCAN_AGAIN = "SET LOCAL enable_seqscan TO DEFAULT"

# One statement, one round trip: take the log lock and the numbers (the UPDATE row-locks
# `log_head` until commit, as on SQLite), insert the batch numbered `head - n + 1 ..
# head` by its position in the arrays (ORDINALITY is the array index, whatever order the
# rows are produced in), and queue the wake-up, which PostgreSQL delivers only at commit.
# A data-modifying WITH runs exactly once and to completion even though nothing reads it.
_APPEND_POSTGRESQL = f"""\
WITH head AS (
    UPDATE log_head SET head = head + %(n)s WHERE id = 1 RETURNING head
), stored AS (
    INSERT INTO events ({_COLUMNS})
    SELECT head.head - %(n)s + e.ord, e.id, e.org, e.action, e.entity_path,
           e.occurred_at_ms, %(now_ms)s::bigint, e.body, e.token_id
    FROM head, unnest(%(ids)b::text[], %(orgs)b::text[], %(actions)b::text[], %(paths)b::text[],
                      %(occurred)b::bigint[], %(bodies)b::bytea[], %(tokens)b::text[])
               WITH ORDINALITY AS e(id, org, action, entity_path, occurred_at_ms, body, token_id, ord)
)
SELECT head.head, pg_notify('{CHANNEL}', '') FROM head"""


def _stored_ids_postgresql(conn: Connection, batch: Sequence[ValidEvent]) -> set[EventKey]:
    ids = [event.id for event in batch]
    conn.exec_driver_sql(_NO_SEQUENTIAL_SCAN)
    rows = conn.exec_driver_sql(_STORED_IDS_POSTGRESQL, (ids,), execution_options={PREPARED: True})
    found = {(row[0], row[1]) for row in rows}
    conn.exec_driver_sql(_SEQUENTIAL_SCAN_AGAIN)
    return found


def _append_postgresql(
    conn: Connection, fresh: list[tuple[ValidEvent, str | None]], now_ms: int, token_id: str | None
) -> int:
    params = {
        "n": len(fresh),
        "now_ms": now_ms,
        "ids": [e.id for e, _ in fresh],
        "orgs": [org for _, org in fresh],
        "actions": [e.action for e, _ in fresh],
        "paths": [e.entity_path for e, _ in fresh],
        "occurred": [e.occurred_at_ms for e, _ in fresh],
        "bodies": [e.body for e, _ in fresh],
        "tokens": [e.token_id or token_id for e, _ in fresh],
    }
    return int(
        conn.exec_driver_sql(_APPEND_POSTGRESQL, params, execution_options={PREPARED: True}).scalar_one()
    )


def _read_range_sql(paramstyle: str) -> str:
    marker = "?" if paramstyle == "qmark" else "%s"
    return (
        "SELECT seq, org, action, entity_path, occurred_at_ms, body FROM events "
        f"WHERE seq > {marker} AND seq <= {marker} ORDER BY seq"
    )


# PostgreSQL sends a whole result to the client at once: the byte budget is applied in the
# query, by the running total of the body sizes before each row (`octet_length` reads a TOASTed
# body's size without fetching it). Still an index range scan, in seq order, with no sort.
_READ_RANGE_BOUNDED_POSTGRESQL = """SELECT seq, org, action, entity_path, occurred_at_ms, body FROM (
    SELECT seq, org, action, entity_path, occurred_at_ms, body,
           sum(octet_length(body)) OVER (ORDER BY seq) - octet_length(body) AS before
    FROM events WHERE seq > %s AND seq <= %s
) AS ranged WHERE before < %s ORDER BY seq"""


def _read_range(conn: Connection, after: int, through: int, max_bytes: int | None) -> Sequence[Any]:
    """Rows of `after < seq <= through`, stopping once their bodies reach `max_bytes` (the
    row that reaches it included, so at least one row comes back)."""
    if max_bytes is None:
        return conn.exec_driver_sql(_read_range_sql(conn.dialect.paramstyle), (after, through)).all()
    if conn.dialect.name == "postgresql":
        # For this statement only (`Connection.execution_options` would set it for the rest
        # of the connection's transaction too).
        return conn.exec_driver_sql(
            _READ_RANGE_BOUNDED_POSTGRESQL,
            (after, through, max_bytes),
            execution_options={BINARY_RESULTS: True},
        ).all()
    # SQLite hands rows over one at a time: stop reading at the budget. The statement goes
    # through SQLAlchemy (its errors are translated), the rows straight from the driver's
    # cursor, which costs no more per row than fetching them all.
    rows: list[Any] = []
    size = 0
    result = conn.exec_driver_sql(_read_range_sql(conn.dialect.paramstyle), (after, through))
    driver_cursor: Any = result.cursor
    try:
        for row in driver_cursor:
            rows.append(row)
            size += len(row[5])
            if size >= max_bytes:
                break
    finally:
        result.close()
    return rows


def ping(conn: Connection) -> None:
    """Raises unless the database answers (readiness)."""
    conn.exec_driver_sql("SELECT 1")


def head_seq(conn: Connection) -> int:
    """The sequence number of the newest committed event (0 for an empty log)."""
    return int(conn.execute(select(log_head.c.head).where(log_head.c.id == 1)).scalar_one())


def org_head(conn: Connection, org: str) -> int:
    """The sequence number of an organization's newest event (0 when it has none)."""
    value = conn.execute(select(func.max(events.c.seq)).where(events.c.org == org)).scalar()
    return int(value) if value is not None else 0


def read_after(conn: Connection, cursor: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
    """The next `limit` events after `cursor`, in log order, and no more than about
    `max_bytes` of them (the event that reaches the budget is the last one).

    Sequence numbers are gapless, so the next `limit` events are exactly the range
    `cursor + 1 .. cursor + limit`. Asking for that range (rather than `seq > cursor
    LIMIT n`) keeps PostgreSQL on an index range scan: with an open range and a large
    LIMIT its planner chose a parallel scan of the whole table, slower as the log grew.
    """
    rows = _read_range(conn, cursor, cursor + limit, max_bytes)
    if not rows:
        # The one gap: below the oldest event retention kept. Jump to what remains.
        first = conn.execute(select(func.min(events.c.seq)).where(events.c.seq > cursor)).scalar()
        if first is not None and first > cursor + limit:
            rows = _read_range(conn, first - 1, first - 1 + limit, max_bytes)
    return [
        StoredEvent(seq, org, action, path, occurred, bytes(body))
        for seq, org, action, path, occurred, body in rows
    ]


def browse(
    conn: Connection, after: int, limit: int, action: str | None, org: str | None, max_bytes: int
) -> tuple[list[tuple[int, int, bytes, str | None]], int]:
    """Rows (seq, received_at_ms, body, token_id) for the admin's view of the log, and the
    head (of `org`'s events, when given: a caller sees nothing of other organizations).

    At most `limit` rows and about `max_bytes` of bodies (at least one row): the sizes are
    read first, then only the bodies that fit, so a page of large events cannot take the
    memory of a thousand of them.
    """
    conditions = [events.c.seq > after]
    if action:
        if action.endswith(".*"):
            conditions.append(events.c.action.startswith(action[:-1], autoescape=True))
        else:
            conditions.append(events.c.action == action)
    if org is not None:
        conditions.append(events.c.org == org)
    sizes = conn.execute(
        select(events.c.seq, func.length(events.c.body))
        .where(*conditions)
        .order_by(events.c.seq)
        .limit(limit)
    ).all()
    head = head_seq(conn) if org is None else org_head(conn, org)
    if not sizes:
        return [], head
    last, total = sizes[0][0], 0
    for seq, size in sizes:
        if total >= max_bytes:
            break
        last, total = seq, total + int(size)
    query = select(events.c.seq, events.c.received_at_ms, events.c.body, events.c.token_id).where(
        *conditions, events.c.seq <= last
    )
    rows = conn.execute(query.order_by(events.c.seq))
    return [(int(r[0]), int(r[1]), bytes(r[2]), r[3]) for r in rows], head
