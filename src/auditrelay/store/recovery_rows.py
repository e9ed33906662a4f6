"""The admin's transactions after trouble: history, dead letters, replay jobs.

As in `destination_changes`, each change commits with its audit event; `audit` builds the
event from the destination inside the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from auditrelay.errors import FieldError, ValidationError
from auditrelay.events import ValidEvent
from auditrelay.model import AttemptRecord, DeadLetter, Destination, MinuteFigures, ReplayJob
from auditrelay.store import delivery_rows
from auditrelay.store.destination_rows import DestinationRows
from auditrelay.store.event_log import append_events, head_seq


def attempt_history(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None, limit: int
) -> list[AttemptRecord]:
    rows.visible(conn, destination_id, scope)
    return delivery_rows.list_attempts(conn, destination_id, limit)


def minute_history(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None, since_ms: int
) -> list[MinuteFigures]:
    """The destination's per-minute figures since `since_ms` (delivered, sampled lag)."""
    rows.visible(conn, destination_id, scope)
    return delivery_rows.minute_figures(conn, destination_id, since_ms)


def dead_letter_page(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None, after: int, limit: int
) -> tuple[list[DeadLetter], int]:
    """A page of dead letters, oldest first, and how many there are in all."""
    rows.visible(conn, destination_id, scope)
    page = delivery_rows.list_dead_letters(conn, destination_id, after, limit)
    return page, delivery_rows.count_dead_letters(conn, destination_id)


def dead_letters_to_resend(
    conn: Connection, destination_id: str, limit: int, ids: Sequence[int] | None
) -> list[DeadLetter]:
    return delivery_rows.list_dead_letters(conn, destination_id, 0, limit, ids)


def count_dead_letters(conn: Connection, destination_id: str) -> int:
    return delivery_rows.count_dead_letters(conn, destination_id)


def discard_dead_letter(
    conn: Connection,
    rows: DestinationRows,
    destination_id: str,
    scope: str | None,
    dead_letter_id: int,
    audit: Callable[[Destination, DeadLetter], Sequence[ValidEvent]],
) -> bool:
    """Remove one dead letter; its audit event names the event that goes with it."""
    destination = rows.visible(conn, destination_id, scope)
    letter = delivery_rows.get_dead_letter(conn, destination_id, dead_letter_id)
    if letter is None:
        return False
    delivery_rows.remove_dead_letters(conn, destination_id, [dead_letter_id])
    append_events(conn, audit(destination, letter), destination.org)
    return True


def settle_resent_dead_letters(
    conn: Connection,
    destination: Destination,
    delivered: Sequence[int],
    refused: Sequence[tuple[int, int | None, str]],
    audit: Sequence[ValidEvent],
) -> int:
    """Remove the dead letters re-sent with success, note the answer of the others
    (id, HTTP status, message), audit the resend; how many dead letters remain."""
    if delivered:
        delivery_rows.remove_dead_letters(conn, destination.id, delivered)
    for dead_letter_id, http_status, message in refused:
        delivery_rows.note_dead_letter_retry(conn, dead_letter_id, http_status, message)
    append_events(conn, audit, destination.org)
    return delivery_rows.count_dead_letters(conn, destination.id)


def request_replay(
    conn: Connection,
    rows: DestinationRows,
    destination_id: str,
    scope: str | None,
    by_seq: tuple[int | None, int | None] | None,
    by_time_ms: tuple[int | None, int | None] | None,
    audit: Callable[[Destination, int, int], Sequence[ValidEvent]],
) -> ReplayJob:
    """A replay job for a range of the log, by sequence numbers or by storage time (both
    ends optional: from the start, up to the head)."""
    destination = rows.visible(conn, destination_id, scope)
    head = head_seq(conn)
    from_seq: int | None
    to_seq: int | None
    if by_time_ms is not None:
        first, last = delivery_rows.seq_range_for_times(conn, *by_time_ms)
        from_seq = first if by_time_ms[0] is not None else 1
        to_seq = last if by_time_ms[1] is not None else head
    else:
        assert by_seq is not None
        from_seq, to_seq = by_seq[0] or 1, by_seq[1] or head
    if from_seq is None or to_seq is None or from_seq > to_seq or from_seq > head:
        raise ValidationError(
            "the range holds no stored events",
            [FieldError("", f"no events in that range (the log holds sequence numbers up to {head})")],
        )
    to_seq = min(to_seq, head)
    job = delivery_rows.create_replay(conn, destination_id, from_seq, to_seq)
    append_events(conn, audit(destination, from_seq, to_seq), destination.org)
    return job


def replay_jobs(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None
) -> list[ReplayJob]:
    rows.visible(conn, destination_id, scope)
    return delivery_rows.list_replays(conn, destination_id)
