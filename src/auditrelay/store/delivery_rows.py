"""SQL for what delivery leaves behind: attempt history, dead letters, replay jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from auditrelay.store.clock import now_ms
from auditrelay.store.tables import dead_letters, delivery_attempts, events, replays

#: Attempts kept per destination; older ones are trimmed.
ATTEMPT_HISTORY = 200


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    at_ms: int
    events: int
    bytes: int
    http_status: int | None
    latency_ms: float
    outcome: str
    error: str | None
    replay: bool = False


@dataclass(frozen=True, slots=True)
class ReplayJob:
    id: int
    destination_id: str
    from_seq: int
    to_seq: int
    cursor: int
    delivered: int
    state: str
    created_at_ms: int
    finished_at_ms: int | None


# -- attempts -----------------------------------------------------------------------------


def record_attempts(
    conn: Connection, destination_id: str, records: Sequence[AttemptRecord], trim: bool
) -> None:
    if records:
        conn.execute(
            insert(delivery_attempts),
            [
                {
                    "destination_id": destination_id,
                    "at_ms": r.at_ms,
                    "events": r.events,
                    "bytes": r.bytes,
                    "http_status": r.http_status,
                    "latency_ms": r.latency_ms,
                    "outcome": r.outcome,
                    "error": r.error[:2000] if r.error else None,
                    "replay": r.replay,
                }
                for r in records
            ],
        )
    if trim:
        boundary = conn.execute(
            select(delivery_attempts.c.id)
            .where(delivery_attempts.c.destination_id == destination_id)
            .order_by(delivery_attempts.c.id.desc())
            .offset(ATTEMPT_HISTORY)
            .limit(1)
        ).scalar()
        if boundary is not None:
            conn.execute(
                delete(delivery_attempts).where(
                    delivery_attempts.c.destination_id == destination_id, delivery_attempts.c.id <= boundary
                )
            )


def list_attempts(conn: Connection, destination_id: str, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(delivery_attempts)
        .where(delivery_attempts.c.destination_id == destination_id)
        .order_by(delivery_attempts.c.id.desc())
        .limit(limit)
    )
    return [dict(row._mapping) for row in rows]


def delete_attempts(conn: Connection, destination_id: str) -> None:
    conn.execute(delete(delivery_attempts).where(delivery_attempts.c.destination_id == destination_id))


# -- dead letters ---------------------------------------------------------------------------


def add_dead_letter(
    conn: Connection,
    destination_id: str,
    seq: int,
    event_id: str,
    body: bytes,
    attempts: int,
    http_status: int | None,
    error: str,
) -> None:
    conn.execute(
        insert(dead_letters).values(
            destination_id=destination_id,
            seq=seq,
            event_id=event_id,
            body=body,
            failed_at_ms=now_ms(),
            attempts=attempts,
            http_status=http_status,
            error=error[:4000],
        )
    )


def list_dead_letters(
    conn: Connection, destination_id: str, after_id: int, limit: int, ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    query = select(dead_letters).where(
        dead_letters.c.destination_id == destination_id, dead_letters.c.id > after_id
    )
    if ids is not None:
        query = query.where(dead_letters.c.id.in_(list(ids)))
    rows = conn.execute(query.order_by(dead_letters.c.id).limit(limit))
    return [dict(row._mapping) for row in rows]


def count_dead_letters(conn: Connection, destination_id: str) -> int:
    query = (
        select(func.count()).select_from(dead_letters).where(dead_letters.c.destination_id == destination_id)
    )
    return int(conn.execute(query).scalar_one())


def remove_dead_letters(conn: Connection, destination_id: str, ids: Sequence[int]) -> int:
    result = conn.execute(
        delete(dead_letters).where(
            dead_letters.c.destination_id == destination_id, dead_letters.c.id.in_(list(ids))
        )
    )
    return int(result.rowcount or 0)


def note_dead_letter_retry(
    conn: Connection, dead_letter_id: int, http_status: int | None, error: str
) -> None:
    conn.execute(
        update(dead_letters)
        .where(dead_letters.c.id == dead_letter_id)
        .values(
            attempts=dead_letters.c.attempts + 1,
            http_status=http_status,
            error=error[:4000],
            failed_at_ms=now_ms(),
        )
    )


# -- replays ----------------------------------------------------------------------------------


def create_replay(conn: Connection, destination_id: str, from_seq: int, to_seq: int) -> ReplayJob:
    result = conn.execute(
        insert(replays)
        .values(
            destination_id=destination_id,
            from_seq=from_seq,
            to_seq=to_seq,
            cursor=from_seq - 1,
            delivered=0,
            state="pending",
            created_at_ms=now_ms(),
        )
        .returning(*replays.c)
    )
    return ReplayJob(**result.one()._mapping)


def pending_replay(conn: Connection, destination_id: str) -> ReplayJob | None:
    row = conn.execute(
        select(replays)
        .where(replays.c.destination_id == destination_id, replays.c.state.in_(("pending", "running")))
        .order_by(replays.c.id)
        .limit(1)
    ).first()
    return ReplayJob(**row._mapping) if row else None


def advance_replay(conn: Connection, replay_id: int, cursor: int, delivered: int, done: bool) -> None:
    values: dict[str, Any] = {
        "cursor": cursor,
        "delivered": replays.c.delivered + delivered,
        "state": "done" if done else "running",
    }
    if done:
        values["finished_at_ms"] = now_ms()
    conn.execute(update(replays).where(replays.c.id == replay_id).values(**values))


def list_replays(conn: Connection, destination_id: str) -> list[ReplayJob]:
    rows = conn.execute(
        select(replays)
        .where(replays.c.destination_id == destination_id)
        .order_by(replays.c.id.desc())
        .limit(100)
    )
    return [ReplayJob(**row._mapping) for row in rows]


# -- log positions in time -----------------------------------------------------------------


def seq_range_for_times(
    conn: Connection, from_ms: int | None, to_ms: int | None
) -> tuple[int | None, int | None]:
    """The first seq received at/after `from_ms` and the last received at/before `to_ms`."""
    first = last = None
    if from_ms is not None:
        first = conn.execute(
            select(func.min(events.c.seq)).where(events.c.received_at_ms >= from_ms)
        ).scalar()
    if to_ms is not None:
        last = conn.execute(select(func.max(events.c.seq)).where(events.c.received_at_ms <= to_ms)).scalar()
    return first, last


def oldest_pending_received_at(conn: Connection, cursor: int) -> int | None:
    """When the first event after `cursor` was stored: how far behind a destination is."""
    value = conn.execute(
        select(events.c.received_at_ms).where(events.c.seq > cursor).order_by(events.c.seq).limit(1)
    ).scalar()
    return int(value) if value is not None else None


def first_seq_after(conn: Connection, cursor: int) -> int | None:
    value = conn.execute(select(func.min(events.c.seq)).where(events.c.seq > cursor)).scalar()
    return int(value) if value is not None else None
