"""SQL for organizations: created, listed, renamed (their title) and removed, each change
with its audit event in the same transaction.

An organization's name is the key every token, destination, membership and event carries,
and never changes: the log holds events sent under it, and producers send it. Removing an
organization removes its destinations (each with its own audit event) and memberships,
and revokes its tokens; its events stay in the log until retention removes them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from auditrelay.errors import Conflict, FieldError, NotFound, ValidationError
from auditrelay.events import ValidEvent
from auditrelay.model import Destination, OrgRecord
from auditrelay.store.clock import now_ms
from auditrelay.store.database import Database
from auditrelay.store.destination_rows import DestinationRows
from auditrelay.store.event_log import append_events
from auditrelay.store.tables import api_tokens, destinations, memberships, orgs, sessions

OrgAudit = Callable[[OrgRecord], Sequence[ValidEvent]]
DestinationAudit = Callable[[Destination], Sequence[ValidEvent]]


def known_orgs(conn: Connection, names: Collection[str]) -> set[str]:
    """Which of `names` are organizations."""
    if not names:
        return set()
    query = select(orgs.c.name).where(orgs.c.name.in_(sorted(names)))
    return set(conn.execute(query).scalars())


def require_org(conn: Connection, name: str | None) -> None:
    """422 on `org` unless it names an organization (None, the instance, is always there)."""
    if name is not None and not known_orgs(conn, [name]):
        raise ValidationError(
            f"no organization is named {name!r}",
            [FieldError("org", f"no organization is named {name!r}; an admin creates it first")],
        )


def _count_by_org(conn: Connection, column: Any, *where: Any) -> dict[str, int]:
    query = select(column, func.count()).where(*where).group_by(column)
    return {name: int(n) for name, n in conn.execute(query) if name is not None}


def _counted(conn: Connection, names: Sequence[str] | None) -> list[OrgRecord]:
    query = select(orgs).order_by(orgs.c.name)
    if names is not None:
        query = query.where(orgs.c.name.in_(sorted(names)))
    rows = conn.execute(query).all()
    if not rows:
        return []
    in_destinations = _count_by_org(conn, destinations.c.org)
    in_tokens = _count_by_org(conn, api_tokens.c.org, api_tokens.c.revoked_at_ms.is_(None))
    in_members = _count_by_org(conn, memberships.c.org)
    return [
        OrgRecord(
            name=row.name,
            title=row.title,
            created_at_ms=row.created_at_ms,
            destinations=in_destinations.get(row.name, 0),
            tokens=in_tokens.get(row.name, 0),
            members=in_members.get(row.name, 0),
        )
        for row in rows
    ]


def list_orgs(conn: Connection, names: Sequence[str] | None) -> list[OrgRecord]:
    """Every organization (`names` None) or those named, by name."""
    return _counted(conn, names)


def visible_org(conn: Connection, name: str, scope: Sequence[str] | None) -> OrgRecord:
    """The organization, if the caller (its organizations in `scope`, None for all) sees it."""
    if scope is not None and name not in scope:
        raise NotFound(f"no organization {name!r}")
    found = _counted(conn, [name])
    if not found:
        raise NotFound(f"no organization {name!r}")
    return found[0]


def create_org(conn: Connection, name: str, title: str | None, audit: OrgAudit) -> OrgRecord:
    if known_orgs(conn, [name]):
        raise Conflict(f"an organization named {name!r} exists already")
    record = OrgRecord(name=name, title=title or name, created_at_ms=now_ms())
    conn.execute(insert(orgs).values(name=name, title=record.title, created_at_ms=record.created_at_ms))
    append_events(conn, audit(record), name)
    return record


def rename_org(conn: Connection, name: str, title: str, audit: OrgAudit) -> OrgRecord:
    """A new title; the name (the key everything carries) stays."""
    current = visible_org(conn, name, None)
    if current.title == title:
        return current
    conn.execute(update(orgs).where(orgs.c.name == name).values(title=title))
    renamed = OrgRecord(
        name=name,
        title=title,
        created_at_ms=current.created_at_ms,
        destinations=current.destinations,
        tokens=current.tokens,
        members=current.members,
    )
    append_events(conn, audit(renamed), name)
    return renamed


def delete_org(
    conn: Connection,
    rows: DestinationRows,
    name: str,
    audit: OrgAudit,
    audit_destination: DestinationAudit,
) -> OrgRecord:
    """Remove the organization with its destinations and memberships; revoke its tokens
    (kept, so their listing still says when they stopped working)."""
    current = visible_org(conn, name, None)
    for destination in rows.list(conn, name, all_orgs=False):
        rows.delete(conn, destination.id)
        append_events(conn, audit_destination(destination), name)
    conn.execute(
        update(api_tokens)
        .where(api_tokens.c.org == name, api_tokens.c.revoked_at_ms.is_(None))
        .values(revoked_at_ms=now_ms())
    )
    conn.execute(update(sessions).where(sessions.c.org == name).values(org=None))
    conn.execute(delete(memberships).where(memberships.c.org == name))
    conn.execute(delete(orgs).where(orgs.c.name == name))
    append_events(conn, audit(current), None)
    return current


def cli_create_org(db: Database, name: str, audit: OrgAudit) -> OrgRecord:
    """Create an organization with its audit event (blocking: the CLI's)."""
    with db.writing() as conn:
        return create_org(conn, name, None, audit)


def cli_list_orgs(db: Database) -> list[OrgRecord]:
    """Every organization (blocking: the CLI's)."""
    with db.reading() as conn:
        return list_orgs(conn, None)
