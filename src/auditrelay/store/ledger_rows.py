"""The delivery ledger's transactions: each writes a loop's change with the attempts it
noted since its last write, so the history never costs a transaction of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from auditrelay.model import AttemptRecord, BreakerState, DeliveryState, InFlight, StateChange, StoredEvent
from auditrelay.store.delivery_rows import (
    add_dead_letter,
    advance_replay,
    commit_progress,
    note_set_aside,
    note_slow,
    note_state_change,
    record_attempts,
    record_failure,
    set_state,
    write_breaker,
)


@dataclass(frozen=True, slots=True)
class Progress:
    """One loop's cursor commit, with the attempts it noted since its last write."""

    destination_id: str
    cursor: int
    delivered: int
    records: Sequence[AttemptRecord]
    trim: bool
    #: What the loop has in flight as it commits.
    in_flight: InFlight | None = None
    #: The change of state this commit makes (to healthy), if any.
    change: StateChange | None = None
    #: An older request is still past the slow threshold: the state stays `slow`.
    still_slow: bool = False


def commit_progress_group(conn: Connection, group: Sequence[Progress]) -> None:
    """Several loops' commits in one transaction (the ledger's group commit)."""
    # One order for every transaction: no lock-order deadlocks between them.
    for item in sorted(group, key=lambda c: c.destination_id):
        commit_progress(
            conn, item.destination_id, item.cursor, item.delivered, item.in_flight, item.still_slow
        )
        record_attempts(conn, item.destination_id, item.records, trim=item.trim)
        if item.change is not None:
            note_state_change(conn, item.destination_id, item.change)


def dead_letter_event(
    conn: Connection,
    destination_id: str,
    event: StoredEvent,
    event_id: str,
    attempts: int,
    http_status: int | None,
    error: str,
    delivered: int,
    breaker: BreakerState,
    records: list[AttemptRecord],
    trim: bool,
    change: StateChange | None = None,
) -> None:
    """Set an event aside and move the cursor to it, with the attempts since the last write
    and the breaker's new count."""
    add_dead_letter(conn, destination_id, event.seq, event_id, event.body, attempts, http_status, error)
    # Everything before this event is delivered or set aside: moving the cursor past it in
    # the same transaction means a crash cannot dead-letter it twice.
    commit_progress(conn, destination_id, event.seq, delivered)
    # The status says what happened last: this event was set aside (not the refusal before).
    note_set_aside(
        conn,
        destination_id,
        f"event {event_id} (seq {event.seq}) refused {attempts} times and set "
        f"aside as a dead letter: {error}",
        http_status,
    )
    write_breaker(conn, destination_id, breaker)
    record_attempts(conn, destination_id, records, trim=trim)
    if change is not None:
        note_state_change(conn, destination_id, change)


def record_failed_attempt(
    conn: Connection,
    destination_id: str,
    state: DeliveryState,
    http_status: int | None,
    message: str,
    failures: int,
    next_retry_ms: int,
    breaker: BreakerState | None,
    records: list[AttemptRecord],
    trim: bool,
    in_flight: InFlight | None = None,
    change: StateChange | None = None,
) -> None:
    """A failed attempt's state and error, with the attempts since the last write (and the
    breaker's state when a hold starts or goes on)."""
    record_failure(conn, destination_id, state, http_status, message, failures, next_retry_ms, in_flight)
    if breaker is not None:
        write_breaker(conn, destination_id, breaker)
    record_attempts(conn, destination_id, records, trim=trim)
    if change is not None:
        note_state_change(conn, destination_id, change)


def note_not_delivering(conn: Connection, destination_id: str, message: str) -> None:
    """The delivering process cannot start the destination's loop (its secrets do not open
    with this node's keys): `failing`, with why, rather than a status that looks fine."""
    record_failure(conn, destination_id, DeliveryState.FAILING, None, message, 1, None)


def record_recovered(conn: Connection, destination_id: str, change: StateChange | None) -> None:
    """An attempt was accepted after failures: healthy again."""
    set_state(conn, destination_id, DeliveryState.HEALTHY)
    if change is not None:
        note_state_change(conn, destination_id, change)


def record_slow(
    conn: Connection, destination_id: str, in_flight: InFlight, change: StateChange | None
) -> None:
    """A request has been in flight longer than the slow threshold."""
    note_slow(conn, destination_id, in_flight)
    if change is not None:
        note_state_change(conn, destination_id, change)


def record_replay_progress(
    conn: Connection,
    destination_id: str,
    job_id: int,
    cursor: int,
    delivered: int,
    done: bool,
    records: list[AttemptRecord],
    trim: bool,
) -> None:
    """A replay job's progress, with the attempts since the last write."""
    advance_replay(conn, job_id, cursor, delivered, done)
    record_attempts(conn, destination_id, records, trim=trim)
