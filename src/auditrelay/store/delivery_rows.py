"""SQL for delivery: each destination's status and cursor, attempt history, dead letters,
replay jobs. The delivery ledger writes through these; the admin services read them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from auditrelay.events import health_event
from auditrelay.model import (
    AttemptRecord,
    BreakerState,
    DeadLetter,
    DeliveryState,
    DeliveryStatus,
    InFlight,
    MinuteFigures,
    ReplayJob,
    ReplayState,
    StateChange,
)
from auditrelay.store.clock import now_ms
from auditrelay.store.event_log import append_events
from auditrelay.store.tables import (
    dead_letters,
    delivery_attempts,
    delivery_minutes,
    destination_status,
    destinations,
    events,
    replays,
)

#: The per-minute counts' bucket.
MINUTE_MS = 60_000

#: Attempts kept per destination; older ones are trimmed.
ATTEMPT_HISTORY = 200
#: The states of a replay job still to run (retention keeps their ranges too).
OPEN_REPLAY_STATES = (ReplayState.PENDING.value, ReplayState.RUNNING.value)


# -- status and cursor ----------------------------------------------------------------------


def read_status(conn: Connection, destination_id: str) -> DeliveryStatus | None:
    row = conn.execute(
        select(destination_status).where(destination_status.c.destination_id == destination_id)
    ).first()
    return _status(row._mapping)[1] if row is not None else None


def read_statuses(conn: Connection) -> dict[str, DeliveryStatus]:
    return dict(_status(row._mapping) for row in conn.execute(select(destination_status)))


def commit_progress(
    conn: Connection,
    destination_id: str,
    cursor: int,
    delivered: int,
    in_flight: InFlight | None = None,
    still_slow: bool = False,
) -> None:
    """Move the cursor after the destination accepted everything up to it (and write what
    the loop has in flight now, when given)."""
    params: dict[str, Any] = {"destination": destination_id, "new_cursor": cursor}
    if in_flight is not None:
        params.update(in_flight=in_flight.requests, oldest=in_flight.oldest_sent_at_ms)
    if delivered:
        params.update(delivered=delivered, now=now_ms())
    statement = _commit_statement(in_flight is not None, bool(delivered), still_slow)
    result = conn.execute(statement, params)
    if delivered and result.rowcount:
        count_delivered(conn, destination_id, delivered)


@functools.cache
def _commit_statement(with_in_flight: bool, delivered: bool, still_slow: bool) -> Any:
    """The cursor commit's UPDATE, built once per shape: a loop commits after every accepted
    request, and building the statement (its values, the CASE, the WHERE) cost more CPU than
    running it."""
    # Parameter names differ from the columns': SQLAlchemy keeps those for its own SET binds.
    new_cursor: Any = bindparam("new_cursor")
    values: dict[str, Any] = {"cursor": new_cursor}
    if with_in_flight:
        values.update(in_flight=bindparam("in_flight"), oldest_in_flight_ms=bindparam("oldest"))
    if delivered:
        # Only an accepted delivery proves the destination healthy again.
        values.update(
            delivered_total=destination_status.c.delivered_total + bindparam("delivered"),
            last_success_at_ms=bindparam("now"),
            state=_unless_paused(DeliveryState.SLOW if still_slow else DeliveryState.HEALTHY),
            consecutive_failures=0,
            next_retry_at_ms=None,
            # An accepted event ends a run of dead letters, and any hold.
            dead_letters_in_a_row=0,
            held_since_ms=None,
        )
    return (
        update(destination_status)
        # Strictly forward: committing the same position twice must not count twice.
        .where(
            destination_status.c.destination_id == bindparam("destination"),
            destination_status.c.cursor < new_cursor,
        )
        .values(**values)
    )


def count_delivered(conn: Connection, destination_id: str, events: int, at_ms: int | None = None) -> None:
    """Add `events` to the destination's count of the current minute."""
    minute = (now_ms() if at_ms is None else at_ms) // MINUTE_MS * MINUTE_MS
    conn.execute(
        _count_statement(conn.dialect.name),
        {"destination": destination_id, "minute": minute, "events": events},
    )


@functools.cache
def _count_statement(dialect_name: str) -> Any:
    """The per-minute count's upsert, built once per dialect (see `_commit_statement`)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(delivery_minutes).values(
        destination_id=bindparam("destination"), minute_ms=bindparam("minute"), events=bindparam("events")
    )
    return statement.on_conflict_do_update(
        index_elements=[delivery_minutes.c.destination_id, delivery_minutes.c.minute_ms],
        set_={"events": delivery_minutes.c.events + statement.excluded.events},
    )


def delivered_last_minute(conn: Connection, destination_id: str, at_ms: int | None = None) -> float:
    """About how many events were delivered over the last 60 s: this minute's count, and the
    share of the previous minute's that falls within the last 60 s (a sliding window)."""
    now = now_ms() if at_ms is None else at_ms
    minute = now // MINUTE_MS * MINUTE_MS
    rows = dict(
        conn.execute(
            select(delivery_minutes.c.minute_ms, delivery_minutes.c.events).where(
                delivery_minutes.c.destination_id == destination_id,
                delivery_minutes.c.minute_ms >= minute - MINUTE_MS,
            )
        ).all()
    )
    elapsed = (now - minute) / MINUTE_MS
    return float(rows.get(minute, 0)) + float(rows.get(minute - MINUTE_MS, 0)) * (1 - elapsed)


def record_lag_sample(
    conn: Connection, destination_id: str, lag_events: int, lag_ms: int, at_ms: int | None = None
) -> None:
    """Write the destination's lag into the row of the minute `at_ms` falls in (made with no
    events delivered when the minute has none yet). A later sample of the same minute
    replaces an earlier one: any process that samples computes the same figures from here."""
    minute = (now_ms() if at_ms is None else at_ms) // MINUTE_MS * MINUTE_MS
    conn.execute(
        _lag_statement(conn.dialect.name),
        {"destination": destination_id, "minute": minute, "lag_events": lag_events, "lag_ms": lag_ms},
    )


@functools.cache
def _lag_statement(dialect_name: str) -> Any:
    """The lag sample's upsert, built once per dialect (see `_commit_statement`)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    statement = dialect.insert(delivery_minutes).values(
        destination_id=bindparam("destination"),
        minute_ms=bindparam("minute"),
        events=0,
        lag_events=bindparam("lag_events"),
        lag_ms=bindparam("lag_ms"),
    )
    return statement.on_conflict_do_update(
        index_elements=[delivery_minutes.c.destination_id, delivery_minutes.c.minute_ms],
        set_={"lag_events": statement.excluded.lag_events, "lag_ms": statement.excluded.lag_ms},
    )


def minute_figures(conn: Connection, destination_id: str, since_ms: int) -> list[MinuteFigures]:
    """The destination's minutes since `since_ms`, oldest first; minutes with neither an
    event delivered nor a lag sample are left out."""
    rows = conn.execute(
        select(
            delivery_minutes.c.minute_ms,
            delivery_minutes.c.events,
            delivery_minutes.c.lag_events,
            delivery_minutes.c.lag_ms,
        )
        .where(delivery_minutes.c.destination_id == destination_id, delivery_minutes.c.minute_ms >= since_ms)
        .order_by(delivery_minutes.c.minute_ms)
    )
    return [
        MinuteFigures(int(m), int(e), None if lag is None else int(lag), None if age is None else int(age))
        for m, e, lag, age in rows
    ]


def trim_delivery_minutes(conn: Connection, before_ms: int) -> int:
    """Drop the per-minute counts older than `before_ms`; how many rows went."""
    return (
        conn.execute(delete(delivery_minutes).where(delivery_minutes.c.minute_ms < before_ms)).rowcount or 0
    )


def note_slow(conn: Connection, destination_id: str, in_flight: InFlight) -> None:
    """A request has been in flight for longer than the slow threshold."""
    conn.execute(
        update(destination_status)
        .where(destination_status.c.destination_id == destination_id)
        .values(
            state=_unless_paused(DeliveryState.SLOW),
            in_flight=in_flight.requests,
            oldest_in_flight_ms=in_flight.oldest_sent_at_ms,
        )
    )


def note_state_change(conn: Connection, destination_id: str, change: StateChange) -> None:
    """Store the audit event of a change of a destination's state, in the transaction that
    writes the change (so it is never lost, nor written for a change that was not)."""
    row = conn.execute(
        select(destinations.c.name, destinations.c.org, destinations.c.kind, destination_status.c.state)
        .join(destination_status, destination_status.c.destination_id == destinations.c.id)
        .where(destinations.c.id == destination_id)
    ).first()
    if row is None or row.state == DeliveryState.PAUSED:
        return  # deleted or paused meanwhile: the loop's last words change nothing
    event = health_event(destination_id, row.name, row.kind, row.org, change)
    append_events(conn, [event], row.org)


def record_failure(
    conn: Connection,
    destination_id: str,
    state: DeliveryState,
    http_status: int | None,
    message: str,
    failures: int,
    next_retry_at_ms: int | None,
    in_flight: InFlight | None = None,
) -> None:
    values: dict[str, Any] = {}
    if in_flight is not None:
        values.update(in_flight=in_flight.requests, oldest_in_flight_ms=in_flight.oldest_sent_at_ms)
    conn.execute(
        update(destination_status)
        .where(destination_status.c.destination_id == destination_id)
        .values(
            state=_unless_paused(state),
            last_error_at_ms=now_ms(),
            last_error_status=http_status,
            last_error_message=message[:2000],
            consecutive_failures=failures,
            next_retry_at_ms=next_retry_at_ms,
            **values,
        )
    )


def note_set_aside(conn: Connection, destination_id: str, message: str, http_status: int | None) -> None:
    """The last error becomes "this event was set aside", without counting a failure."""
    conn.execute(
        update(destination_status)
        .where(destination_status.c.destination_id == destination_id)
        .values(last_error_at_ms=now_ms(), last_error_status=http_status, last_error_message=message[:2000])
    )


def mark_resumed(conn: Connection, destination_id: str) -> None:
    """A paused destination is active again: `pending` until it delivers, `healthy` if it
    ever did; failures counted before the pause start over."""
    conn.execute(
        update(destination_status)
        .where(
            destination_status.c.destination_id == destination_id,
            destination_status.c.state == DeliveryState.PAUSED,
        )
        .values(
            state=case(
                (destination_status.c.delivered_total > 0, DeliveryState.HEALTHY.value),
                else_=DeliveryState.PENDING.value,
            ),
            consecutive_failures=0,
            next_retry_at_ms=None,
        )
    )


def _unless_paused(state: DeliveryState) -> Any:
    """`state`, unless an admin paused the destination meanwhile: a loop's last write as it
    stops must not make a paused destination read healthy or failing."""
    return case(
        (destination_status.c.state == DeliveryState.PAUSED.value, DeliveryState.PAUSED.value),
        else_=state.value,
    )


def set_state(conn: Connection, destination_id: str, state: DeliveryState) -> None:
    """Set the state; back to healthy also clears the failure count and retry time."""
    values: dict[str, Any] = {
        "state": state if state is DeliveryState.PAUSED else _unless_paused(state),
        "next_retry_at_ms": None,
    }
    if state is DeliveryState.HEALTHY:
        values["consecutive_failures"] = 0
    conn.execute(
        update(destination_status)
        .where(destination_status.c.destination_id == destination_id)
        .values(**values)
    )


def request_retry(conn: Connection, destination_id: str) -> int:
    """Ask the destination's loop to retry now, which ends a hold; returns the time (ms)."""
    at = now_ms()
    conn.execute(
        update(destination_status)
        .where(destination_status.c.destination_id == destination_id)
        .values(retry_requested_at_ms=at, dead_letters_in_a_row=0, held_since_ms=None)
    )
    return at


def write_breaker(conn: Connection, destination_id: str, breaker: BreakerState) -> None:
    conn.execute(
        update(destination_status)
        .where(destination_status.c.destination_id == destination_id)
        .values(dead_letters_in_a_row=breaker.dead_letters_in_a_row, held_since_ms=breaker.held_since_ms)
    )


def reset_breaker(conn: Connection, destination_id: str) -> None:
    """An edit of where or how events are sent ends the hold: the new settings get a chance."""
    write_breaker(conn, destination_id, BreakerState())


def _status(row: Any) -> tuple[str, DeliveryStatus]:
    """A status row as (destination id, status)."""
    values = dict(row)
    values.pop("retry_requested_at_ms", None)
    destination_id = values.pop("destination_id")
    values["state"] = DeliveryState(values["state"])
    return destination_id, DeliveryStatus(**values)


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


def list_attempts(conn: Connection, destination_id: str, limit: int) -> list[AttemptRecord]:
    """The newest `limit` attempts, newest first."""
    rows = conn.execute(
        select(delivery_attempts)
        .where(delivery_attempts.c.destination_id == destination_id)
        .order_by(delivery_attempts.c.id.desc())
        .limit(limit)
    )
    return [
        AttemptRecord(
            at_ms=r.at_ms,
            events=r.events,
            bytes=r.bytes,
            http_status=r.http_status,
            latency_ms=r.latency_ms,
            outcome=r.outcome,
            error=r.error,
            replay=bool(r.replay),
        )
        for r in rows
    ]


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
) -> list[DeadLetter]:
    query = select(dead_letters).where(
        dead_letters.c.destination_id == destination_id, dead_letters.c.id > after_id
    )
    if ids is not None:
        query = query.where(dead_letters.c.id.in_(list(ids)))
    rows = conn.execute(query.order_by(dead_letters.c.id).limit(limit))
    return [DeadLetter(**{**row._mapping, "body": bytes(row.body)}) for row in rows]


def count_dead_letters(conn: Connection, destination_id: str) -> int:
    query = (
        select(func.count()).select_from(dead_letters).where(dead_letters.c.destination_id == destination_id)
    )
    return int(conn.execute(query).scalar_one())


def get_dead_letter(conn: Connection, destination_id: str, dead_letter_id: int) -> DeadLetter | None:
    found = list_dead_letters(conn, destination_id, 0, 1, [dead_letter_id])
    return found[0] if found else None


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
            state=ReplayState.PENDING,
            created_at_ms=now_ms(),
        )
        .returning(*replays.c)
    )
    return _replay(result.one()._mapping)


def pending_replay(conn: Connection, destination_id: str) -> ReplayJob | None:
    row = conn.execute(
        select(replays)
        .where(replays.c.destination_id == destination_id, replays.c.state.in_(OPEN_REPLAY_STATES))
        .order_by(replays.c.id)
        .limit(1)
    ).first()
    return _replay(row._mapping) if row else None


def advance_replay(conn: Connection, replay_id: int, cursor: int, delivered: int, done: bool) -> None:
    values: dict[str, Any] = {
        "cursor": cursor,
        "delivered": replays.c.delivered + delivered,
        "state": ReplayState.DONE if done else ReplayState.RUNNING,
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
    return [_replay(row._mapping) for row in rows]


def _replay(row: Any) -> ReplayJob:
    return ReplayJob(**{**row, "state": ReplayState(row["state"])})


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


def oldest_pending_received_at(conn: Connection, cursor: int, org: str | None = None) -> int | None:
    """When the first event after `cursor` (of `org`, if given) was stored: how far behind a
    destination is."""
    query = select(events.c.received_at_ms).where(events.c.seq > cursor)
    if org is not None:
        query = query.where(events.c.org == org)
    value = conn.execute(query.order_by(events.c.seq).limit(1)).scalar()
    return int(value) if value is not None else None


#: Counting an organization's events owed stops here (an index range of this many entries
#: takes tens of milliseconds); the status then shows this figure as the lag.
LAG_COUNT_LIMIT = 1_000_000


def org_lag(conn: Connection, org: str, cursor: int) -> int:
    """How many of an organization's events come after `cursor` (at most LAG_COUNT_LIMIT)."""
    owed = (
        select(events.c.seq)
        .where(events.c.org == org, events.c.seq > cursor)
        .limit(LAG_COUNT_LIMIT)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(owed)).scalar_one())
