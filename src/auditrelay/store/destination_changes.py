"""The admin's transactions on destinations: each change stored with its own audit events.

Every change and its audit events (`audit_stream.destination.*`) commit in one transaction:
the log can never miss a change, nor record one that did not happen. The admin services
decide what the change is and what its audit events say; these functions store both.
`audit` arguments build the events from the destination as it stands inside the
transaction, since only then is it known (a delete audits what was deleted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Connection

from auditrelay.errors import Conflict
from auditrelay.events import ValidEvent
from auditrelay.model import Destination, DestinationOverview
from auditrelay.store import delivery_rows
from auditrelay.store.clock import now_ms
from auditrelay.store.destination_rows import DestinationRows
from auditrelay.store.event_log import append_events, head_seq, org_head
from auditrelay.store.org_rows import require_org

Audit = Callable[[Destination], Sequence[ValidEvent]]


def _overview(
    conn: Connection, rows: DestinationRows, destination: Destination, head: int
) -> DestinationOverview:
    """`head` is the log's; an organization's destination is shown its organization's head
    and lag, never figures of other organizations' events."""
    status = delivery_rows.read_status(conn, destination.id)
    org = destination.org
    if org is not None:
        head = org_head(conn, org)
    if status is None:
        return DestinationOverview(destination, None, head)
    lag, oldest_pending_ms = _owed(conn, org, status.cursor, head)
    return DestinationOverview(
        destination,
        status,
        head,
        lag=lag,
        oldest_pending_ms=oldest_pending_ms,
        dead_letters=delivery_rows.count_dead_letters(conn, destination.id),
        delivered_last_minute=delivery_rows.delivered_last_minute(conn, destination.id),
    )


def _owed(conn: Connection, org: str | None, cursor: int, head: int) -> tuple[int, int | None]:
    """How many events a destination at `cursor` still owes, and when the oldest was stored."""
    lag = max(0, head - cursor) if org is None else delivery_rows.org_lag(conn, org, cursor)
    return lag, delivery_rows.oldest_pending_received_at(conn, cursor, org)


def sample_lags(conn: Connection, rows: DestinationRows, at_ms: int | None = None) -> int:
    """Write every destination's lag (events owed, age of the oldest) into the current
    minute's figures, the history the admin panel charts; how many were sampled. The
    figures are the status's own, so whichever process samples writes the same."""
    now = now_ms() if at_ms is None else at_ms
    statuses = delivery_rows.read_statuses(conn)
    head = head_seq(conn)
    sampled = 0
    for destination in rows.list(conn):
        status = statuses.get(destination.id)
        if status is None:
            continue
        org_head_seq = head if destination.org is None else org_head(conn, destination.org)
        lag, oldest = _owed(conn, destination.org, status.cursor, org_head_seq)
        age = max(0, now - oldest) if oldest is not None else 0
        delivery_rows.record_lag_sample(conn, destination.id, lag, age, now)
        sampled += 1
    return sampled


def list_overviews(conn: Connection, rows: DestinationRows, scope: str | None) -> list[DestinationOverview]:
    """Every destination the caller may see (`scope`: its organization, None for all)."""
    head = head_seq(conn)
    return [_overview(conn, rows, d, head) for d in rows.list(conn, scope, all_orgs=scope is None)]


def read_overview(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None
) -> DestinationOverview:
    return _overview(conn, rows, rows.visible(conn, destination_id, scope), head_seq(conn))


def load_visible_destination(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None
) -> Destination:
    return rows.visible(conn, destination_id, scope)


def _audit(conn: Connection, events: Sequence[ValidEvent], org: str | None) -> int:
    return append_events(conn, events, org).head


def create_destination(
    conn: Connection, rows: DestinationRows, destination: Destination, audit: Audit
) -> DestinationOverview:
    require_org(conn, destination.org)
    # The audit event of the creation takes the log lock; the destination starts just
    # before it, so it receives exactly what is stored from its creation on.
    created_seq = _audit(conn, audit(destination), destination.org)
    rows.insert(conn, destination, cursor=created_seq - 1)
    return _overview(conn, rows, destination, head_seq(conn))


def update_destination(
    conn: Connection,
    rows: DestinationRows,
    updated: Destination,
    expected_version: int,
    scope: str | None,
    audit: Audit,
    reset_breaker: bool = False,
) -> DestinationOverview:
    """Store `updated` unless the destination changed since the caller read it;
    `reset_breaker` ends a hold (the edit changed where or how events are sent)."""
    latest = rows.visible(conn, updated.id, scope)
    # Optimistic concurrency: another change since the caller read it would be lost.
    if latest.version != expected_version:
        raise Conflict("the destination changed meanwhile; read it again and retry")
    rows.update(conn, updated)
    if reset_breaker:
        delivery_rows.reset_breaker(conn, updated.id)
    _audit(conn, audit(updated), updated.org)
    return _overview(conn, rows, updated, head_seq(conn))


def set_destination_active(
    conn: Connection,
    rows: DestinationRows,
    destination_id: str,
    scope: str | None,
    change: Callable[[Destination], Destination | None],
    audit: Audit,
) -> DestinationOverview:
    """Pause or resume: `change` gives the new destination, or None when nothing changes."""
    current = rows.visible(conn, destination_id, scope)
    updated = change(current)
    if updated is not None:
        rows.update(conn, updated)  # a resume marks it pending or healthy again
        _audit(conn, audit(updated), updated.org)
        current = updated
    return _overview(conn, rows, current, head_seq(conn))


def request_retry_now(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None, audit: Audit
) -> DestinationOverview:
    """Record that the destination's loop should retry now (its audit event with it)."""
    destination = rows.visible(conn, destination_id, scope)
    delivery_rows.request_retry(conn, destination_id)
    events = audit(destination)
    if events:
        _audit(conn, events, destination.org)
    return _overview(conn, rows, destination, head_seq(conn))


def record_destination_action(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None, audit: Audit
) -> None:
    """The audit event of an action that changes nothing stored (a test send)."""
    _audit(conn, audit(rows.visible(conn, destination_id, scope)), None)


def delete_destination(
    conn: Connection, rows: DestinationRows, destination_id: str, scope: str | None, audit: Audit
) -> None:
    current = rows.visible(conn, destination_id, scope)
    rows.delete(conn, destination_id)
    _audit(conn, audit(current), current.org)
