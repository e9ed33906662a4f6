"""SQL of retention: remove old events in bulk, never before every destination has passed them.

Events older than `retention_days` are removed once every destination's cursor is past
them; events older than `retention_hard_max_days` are removed regardless, so a destination
forgotten in `paused` cannot keep the log growing forever. Deletion goes by sequence range
in chunks, each its own short transaction, so ingest is never blocked for long.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from auditrelay.config import Settings
from auditrelay.events import retention_loss_event
from auditrelay.metrics import EVENTS_LOST_TO_RETENTION
from auditrelay.store.database import Database
from auditrelay.store.delivery_rows import OPEN_REPLAY_STATES, trim_delivery_minutes
from auditrelay.store.event_log import append_events
from auditrelay.store.tables import destination_status, destinations, events, replays

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class PurgePlan:
    """Remove events with `seq <= through`; `held_back` were past retention but still owed."""

    through: int | None
    held_back_by_cursor: int | None


#: How long the per-minute delivery counts are kept (the admin panel charts hours of them).
MINUTES_KEPT_HOURS = 48


def plan_purge(conn: Connection, now_ms: int, retention_days: float, hard_max_days: float) -> PurgePlan:
    expired = conn.execute(
        select(func.max(events.c.seq)).where(events.c.received_at_ms < now_ms - int(retention_days * DAY_MS))
    ).scalar()
    if expired is None:
        return PurgePlan(None, None)
    slowest = conn.execute(select(func.min(destination_status.c.cursor))).scalar()
    # A replay still to run needs its range too.
    replaying = conn.execute(
        select(func.min(replays.c.cursor)).where(replays.c.state.in_(OPEN_REPLAY_STATES))
    ).scalar()
    if replaying is not None:
        slowest = replaying if slowest is None else min(slowest, replaying)
    through = expired if slowest is None else min(expired, slowest)
    hard = conn.execute(
        select(func.max(events.c.seq)).where(events.c.received_at_ms < now_ms - int(hard_max_days * DAY_MS))
    ).scalar()
    if hard is not None:
        through = max(through, hard)
    return PurgePlan(through, slowest if through < expired else None)


def record_losses(conn: Connection, through: int, now_ms: int) -> list[tuple[str, int, int]]:
    """Before removing events up to `through`: for each destination whose cursor is before it,
    write down what it loses (count, range, time), tell it with an audit event, and move its
    cursor past the gap, all in this transaction. Returns (destination id, count, from seq).

    The count is of the events in the range, whether or not its filters would have passed
    them on. A pass cut short after this keeps its word: the cursors are past the gap, so the
    next pass counts nothing twice."""
    owing = conn.execute(
        select(
            destination_status.c.destination_id,
            destination_status.c.cursor,
            destinations.c.name,
            destinations.c.kind,
            destinations.c.org,
        )
        .join(destinations, destinations.c.id == destination_status.c.destination_id)
        .where(destination_status.c.cursor < through)
    ).all()
    losses = []
    for row in owing:
        count = conn.execute(
            select(func.count()).select_from(events).where(events.c.seq > row.cursor, events.c.seq <= through)
        ).scalar_one()
        values: dict[str, object] = {"cursor": through}
        if count:
            values.update(
                lost_to_retention=destination_status.c.lost_to_retention + count,
                lost_from_seq=row.cursor + 1,
                lost_to_seq=through,
                lost_at_ms=now_ms,
            )
        conn.execute(
            update(destination_status)
            .where(destination_status.c.destination_id == row.destination_id)
            .values(**values)
        )
        if count:
            event = retention_loss_event(
                row.destination_id, row.name, row.kind, row.org, count, row.cursor + 1, through
            )
            append_events(conn, [event], row.org)
            losses.append((row.destination_id, count, row.cursor + 1))
    return losses


def delete_chunk(conn: Connection, through: int) -> int:
    """Delete the oldest events up to `through`, at most CHUNK of them; how many went."""
    oldest = conn.execute(select(func.min(events.c.seq))).scalar()
    if oldest is None or oldest > through:
        return 0
    result = conn.execute(delete(events).where(events.c.seq <= min(through, oldest + CHUNK - 1)))
    return int(result.rowcount or 0)


def purge(db: Database, settings: Settings) -> int:
    """One retention pass, in short transactions (blocking); how many events were removed."""
    with db.writing() as conn:
        trim_delivery_minutes(conn, int(time.time() * 1000) - MINUTES_KEPT_HOURS * 3_600_000)
    with db.reading() as conn:
        plan = plan_purge(
            conn, int(time.time() * 1000), settings.retention_days, settings.retention_hard_max_days
        )
    if plan.held_back_by_cursor is not None:
        log.info(
            "retention: events after seq %d are past retention but kept until every destination has them",
            plan.held_back_by_cursor,
        )
    if plan.through is None:
        return 0
    with db.writing() as conn:
        losses = record_losses(conn, plan.through, int(time.time() * 1000))
    for destination_id, count, from_seq in losses:
        EVENTS_LOST_TO_RETENTION.labels(destination_id).inc(count)
        log.warning(
            "retention: destination %s had not received %d events (seq %d..%d) older than the hard "
            "maximum of %g days; they are removed",
            destination_id,
            count,
            from_seq,
            plan.through,
            settings.retention_hard_max_days,
        )
    removed = 0
    while True:
        with db.writing() as conn:
            count = delete_chunk(conn, plan.through)
        removed += count
        if count == 0:
            break
    if removed:
        log.info("retention: removed %d events (through seq %d)", removed, plan.through)
    return removed
