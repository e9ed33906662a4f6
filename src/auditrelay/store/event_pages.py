"""The log read newest first, as the admin panel's Events page shows it: filtered pages
walked backwards by sequence number, a count of newer events, one event by its number,
and what the log and the delivery tables say about one event at one destination.

The log is indexed by `seq` (and by `org, seq`): every read here is a range of sequence
numbers, walked in chunks from the newest down, never an OFFSET. A page stops after
`window` sequence numbers even when fewer than a page of events matched (a rare actor in a
long log), and says where to go on (`older`): no request scans the whole log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, LargeBinary, bindparam, func, or_, select

from auditrelay.model import DeadLetter, Destination, ReplayJob
from auditrelay.store import delivery_rows
from auditrelay.store.destination_rows import DestinationRows
from auditrelay.store.event_log import head_seq, org_head
from auditrelay.store.tables import dead_letters, events

#: Events on a page of the Events view.
PAGE_SIZE = 50
#: Sequence numbers one page (or one count of newer events) looks at, at most.
SCAN_WINDOW = 10_000
#: Sequence numbers read per statement within the window.
_CHUNK = 1_000
#: The dead-letter audit events of a destination looked at to tell a discarded event from
#: a delivered one (the newest ones).
_LETTER_EVENTS = 500

_CREATE = "audit_stream.destination.create"
_DISCARD = "audit_stream.destination.dead_letter.discard"
_RESEND = "audit_stream.destination.dead_letter.resend"


@dataclass(frozen=True, slots=True)
class EventQuery:
    """What the Events view asks for; each field None (or empty) for "any".

    `org`: one organization's events (a caller of one organization always has its own here).
    `action`: exact, or a prefix such as `document.*`. `actor`: the actor's user id, email
    or name, or a service or system actor's name (exact). `entity_path`: the path or a path
    under it, by whole segments. `since_ms` / `until_ms`: the event's time, both ends in."""

    org: str | None = None
    action: str | None = None
    actor: str | None = None
    entity_path: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    seq: int
    org: str | None
    action: str
    entity_path: str | None
    occurred_at_ms: int
    received_at_ms: int
    body: bytes
    token_id: str | None


@dataclass(frozen=True, slots=True)
class EventPage:
    """Events newest first. `older`: the `before` of the next page (None: the oldest event
    has been looked at). `head`: the newest sequence number the caller may see, when read."""

    events: list[LoggedEvent]
    older: int | None
    head: int


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
    """What the store knows of one event at one destination (the service tells the story).

    `cursor`: the destination's delivered position (None: no status row yet).
    `dead_letter`: the event, set aside. `replays`: the replay jobs whose range holds it.
    `discarded` / `resent`: a dead-letter audit event of this destination names the event.
    `starts_at`: the first sequence number the destination was to receive (that of its
    creation's audit event; 0 when retention removed it: every event left came after)."""

    starts_at: int
    cursor: int | None
    state: str | None
    dead_letter: DeadLetter | None
    replays: list[ReplayJob]
    discarded: bool
    resent: bool


_COLUMNS = (
    events.c.seq,
    events.c.org,
    events.c.action,
    events.c.entity_path,
    events.c.occurred_at_ms,
    events.c.received_at_ms,
    events.c.body,
    events.c.token_id,
)


def newest_events(
    conn: Connection,
    query: EventQuery,
    before: int | None = None,
    limit: int = PAGE_SIZE,
    window: int = SCAN_WINDOW,
) -> EventPage:
    """Up to `limit` events matching `query` with `seq < before` (None: from the newest),
    newest first, looking at no more than `window` sequence numbers."""
    head = head_seq(conn) if query.org is None else org_head(conn, query.org)
    top = head if before is None else min(before - 1, head)
    floor = _oldest(conn, query.org)
    found: list[LoggedEvent] = []
    if floor is None or top < floor:
        return EventPage(found, None, head)
    bottom = max(floor, top - window + 1)
    hi = top
    while hi >= bottom:
        lo = max(bottom, hi - _CHUNK + 1)
        for event in _matching(conn, query, lo, hi, limit - len(found)):
            found.append(event)
            if len(found) == limit:
                return EventPage(found, event.seq if event.seq > floor else None, head)
        hi = lo - 1
    return EventPage(found, bottom if bottom > floor else None, head)


def count_newer(
    conn: Connection, query: EventQuery, after: int, window: int = SCAN_WINDOW
) -> tuple[int, bool]:
    """How many events matching `query` have `seq > after` (among the next `window`
    sequence numbers), and whether there may be more beyond them."""
    head = head_seq(conn) if query.org is None else org_head(conn, query.org)
    if head <= after:
        return 0, False
    through = min(head, after + window)
    if query.actor:
        count = sum(1 for _ in _matching(conn, query, after + 1, through, None))
    else:
        count = int(
            conn.execute(
                select(func.count())
                .select_from(events)
                .where(*_conditions(conn.dialect.name, query, after + 1, through))
            ).scalar_one()
        )
    return count, through < head


def event_at(conn: Connection, seq: int, org: str | None) -> LoggedEvent | None:
    """The event numbered `seq`, if it is `org`'s (None: any organization's)."""
    conditions = [events.c.seq == seq]
    if org is not None:
        conditions.append(events.c.org == org)
    row = conn.execute(select(*_COLUMNS).where(*conditions)).first()
    return _event(row) if row is not None else None


def delivery_facts(conn: Connection, destination_id: str, org: str | None, seq: int) -> DeliveryFacts:
    """The destination's cursor and state, the event's dead letter there, the replays
    over it, and whether a dead-letter audit event of the destination names it.

    A discarded or re-sent dead letter leaves no row: only its audit event (in the
    destination's organization, naming the destination's id and the event's seq) tells."""
    status = delivery_rows.read_status(conn, destination_id)
    letter_row = conn.execute(
        select(dead_letters).where(dead_letters.c.destination_id == destination_id, dead_letters.c.seq == seq)
    ).first()
    letter = DeadLetter(**{**letter_row._mapping, "body": bytes(letter_row.body)}) if letter_row else None
    replays = [
        job for job in delivery_rows.list_replays(conn, destination_id) if job.from_seq <= seq <= job.to_seq
    ]
    discarded = resent = False
    if letter is None:
        org_condition = events.c.org.is_(None) if org is None else events.c.org == org
        named = conn.execute(
            select(events.c.action, events.c.body)
            .where(
                org_condition,
                events.c.seq > seq,
                events.c.action.in_((_DISCARD, _RESEND)),
                _contains(conn.dialect.name, events.c.body, destination_id),
                # `"seq":12` is in `"seq":123` too: the exact test on the details follows.
                _contains(conn.dialect.name, events.c.body, f'"seq":{seq}'),
            )
            .order_by(events.c.seq.desc())
            .limit(_LETTER_EVENTS)
        )
        for action, body in named:
            if _names(orjson.loads(body).get("details") or {}, destination_id, seq):
                if action == _DISCARD:
                    discarded = True
                else:
                    resent = True
                break  # the newest word on it
    return DeliveryFacts(
        _created_at_seq(conn, destination_id, org),
        status.cursor if status else None,
        status.state.value if status else None,
        letter,
        replays,
        discarded,
        resent,
    )


def destinations_of_event(
    conn: Connection, rows: DestinationRows, event: LoggedEvent, with_instance: bool
) -> list[tuple[Destination, DeliveryFacts]]:
    """The destinations that may have had the event (its organization's, and with
    `with_instance` the instance's, which take every event), each with its facts."""
    found = rows.list(conn, event.org, all_orgs=False) if event.org is not None else []
    if with_instance:
        found += rows.list(conn, None, all_orgs=False)
    return [(d, delivery_facts(conn, d.id, d.org, event.seq)) for d in found]


def _created_at_seq(conn: Connection, destination_id: str, org: str | None) -> int:
    org_condition = events.c.org.is_(None) if org is None else events.c.org == org
    rows = conn.execute(
        select(events.c.seq, events.c.body)
        .where(
            org_condition,
            events.c.action == _CREATE,
            _contains(conn.dialect.name, events.c.body, destination_id),
        )
        .order_by(events.c.seq)
    )
    for seq, body in rows:
        entity = orjson.loads(body).get("entity") or {}
        if entity.get("id") == destination_id:
            return int(seq)
    return 0


def _names(details: dict[str, Any], destination_id: str, seq: int) -> bool:
    if (details.get("destination") or {}).get("id") != destination_id:
        return False
    if details.get("seq") == seq:
        return True
    return any(isinstance(e, dict) and e.get("seq") == seq for e in details.get("events") or ())


def _oldest(conn: Connection, org: str | None) -> int | None:
    query = select(func.min(events.c.seq))
    if org is not None:
        query = query.where(events.c.org == org)
    value = conn.execute(query).scalar()
    return int(value) if value is not None else None


def _starts_with(column: Any, prefix: str) -> ColumnElement[bool]:
    """`column` begins with `prefix`, case and all: SQLite's LIKE ignores ASCII case (and
    PostgreSQL's does not), so a prefix is compared as the leading characters instead."""
    return func.substr(column, 1, len(prefix)) == prefix


def _matching(
    conn: Connection, query: EventQuery, lo: int, hi: int, limit: int | None
) -> Iterator[LoggedEvent]:
    """The events of `lo <= seq <= hi` matching `query`, newest first (at most `limit`)."""
    statement = (
        select(*_COLUMNS).where(*_conditions(conn.dialect.name, query, lo, hi)).order_by(events.c.seq.desc())
    )
    if limit is not None and not query.actor:
        statement = statement.limit(limit)
    for row in conn.execute(statement):
        event = _event(row)
        if query.actor and not actor_matches(event.body, query.actor):
            continue
        yield event


def _conditions(dialect: str, query: EventQuery, lo: int, hi: int) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [events.c.seq >= lo, events.c.seq <= hi]
    if query.org is not None:
        conditions.append(events.c.org == query.org)
    if query.action and query.action != "*":
        if query.action.endswith(".*"):
            conditions.append(_starts_with(events.c.action, query.action[:-1]))
        else:
            conditions.append(events.c.action == query.action)
    if query.entity_path:
        path = query.entity_path.strip("/")
        conditions.append(or_(events.c.entity_path == path, _starts_with(events.c.entity_path, path + "/")))
    if query.since_ms is not None:
        conditions.append(events.c.occurred_at_ms >= query.since_ms)
    if query.until_ms is not None:
        conditions.append(events.c.occurred_at_ms <= query.until_ms)
    if query.actor:
        # A cheap first cut in the database (the bytes appear in the body); the exact test
        # on the decoded actor follows.
        conditions.append(_contains(dialect, events.c.body, orjson.dumps(query.actor)[1:-1].decode()))
    return conditions


def _contains(dialect: str, body: Any, text: str) -> ColumnElement[bool]:
    """`body` (bytes) holds `text` (UTF-8): SQLite's `instr` compares blobs byte by byte;
    PostgreSQL's LIKE takes bytea, with its wildcards escaped (`\\` is its escape)."""
    needle = text.encode()
    if dialect == "postgresql":
        escaped = needle.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")
        pattern = bindparam(None, b"%" + escaped + b"%", type_=LargeBinary)
        liked: ColumnElement[bool] = body.op("LIKE", is_comparison=True)(pattern)
        return liked
    return func.instr(body, bindparam(None, needle, type_=LargeBinary)) > 0


def actor_matches(body: bytes, actor: str) -> bool:
    """True when the event's actor is `actor`: its user's id, email or name, or the name
    (or id) of a service or system actor."""
    found = orjson.loads(body).get("actor")
    if not isinstance(found, dict):
        return False
    candidates = [found.get("name"), found.get("id")]
    user = found.get("user")
    if isinstance(user, dict):
        candidates += [user.get("id"), user.get("email"), user.get("name")]
    return any(c is not None and not isinstance(c, bool) and str(c) == actor for c in candidates)


def _event(row: Any) -> LoggedEvent:
    seq, org, action, path, occurred, received, body, token_id = row
    return LoggedEvent(int(seq), org, action, path, int(occurred), int(received), bytes(body), token_id)
