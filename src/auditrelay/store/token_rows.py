"""SQL for API tokens: stored as SHA-256 digests, looked up by digest; listed by prefix.

A token is refused once revoked or expired, by every process at its next request: the
lookup reads the row each time (no cache), so nothing has to be told to the other workers.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace

from sqlalchemy import Connection, func, insert, or_, select, update

from auditrelay.errors import NotFound
from auditrelay.events import ValidEvent
from auditrelay.model import TokenRecord
from auditrelay.security import Principal, Role, digest, new_token, shown_prefix
from auditrelay.store.database import Database
from auditrelay.store.event_log import append_events
from auditrelay.store.org_rows import require_org
from auditrelay.store.tables import api_tokens

#: The audit events of a token change, built by the admin services from the record.
TokenAudit = Callable[[TokenRecord], Sequence[ValidEvent]]

_COLUMNS = (
    api_tokens.c.id,
    api_tokens.c.name,
    api_tokens.c.role,
    api_tokens.c.org,
    api_tokens.c.prefix,
    api_tokens.c.created_at_ms,
    api_tokens.c.last_used_at_ms,
    api_tokens.c.expires_at_ms,
    api_tokens.c.revoked_at_ms,
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def create_token(
    conn: Connection, role: Role, name: str, org: str | None = None, expires_at_ms: int | None = None
) -> tuple[str, TokenRecord]:
    """Store a new token's digest; return the token (never stored itself) and its record."""
    token = new_token(role)
    record = TokenRecord(
        id=str(uuid.uuid4()),
        name=name,
        role=role.value,
        org=org,
        prefix=shown_prefix(token, role),
        created_at_ms=_now_ms(),
        last_used_at_ms=None,
        expires_at_ms=expires_at_ms,
        revoked_at_ms=None,
    )
    conn.execute(
        insert(api_tokens).values(
            id=record.id,
            name=name,
            role=role.value,
            org=org,
            token_sha256=digest(token),
            hint=token[-4:],
            prefix=record.prefix,
            created_at_ms=record.created_at_ms,
            expires_at_ms=expires_at_ms,
        )
    )
    return token, record


def find_principal(conn: Connection, token: str) -> Principal | None:
    """The principal of a token that is neither revoked nor expired."""
    row = conn.execute(
        select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.org).where(
            api_tokens.c.token_sha256 == digest(token),
            api_tokens.c.revoked_at_ms.is_(None),
            or_(api_tokens.c.expires_at_ms.is_(None), api_tokens.c.expires_at_ms > _now_ms()),
        )
    ).first()
    if row is None:
        return None
    return Principal(token_id=row.id, name=row.name, role=Role(row.role), org=row.org)


def touch_token(conn: Connection, token_id: str, at_ms: int) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at_ms=at_ms))


def list_tokens(conn: Connection, scope: str | None) -> list[TokenRecord]:
    """Every token (`scope` None) or those of one organization, newest first."""
    query = select(*_COLUMNS).order_by(api_tokens.c.created_at_ms.desc(), api_tokens.c.id)
    if scope is not None:
        query = query.where(api_tokens.c.org == scope)
    return [TokenRecord(**row._mapping) for row in conn.execute(query)]


def visible_token(conn: Connection, token_id: str, scope: str | None) -> TokenRecord:
    """The token, if the caller's `scope` (an organization, or None for all) holds it."""
    query = select(*_COLUMNS).where(api_tokens.c.id == token_id)
    if scope is not None:
        query = query.where(api_tokens.c.org == scope)
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no token {token_id}")
    return TokenRecord(**row._mapping)


def add_token(
    conn: Connection, role: Role, name: str, org: str | None, expires_at_ms: int | None, audit: TokenAudit
) -> tuple[str, TokenRecord]:
    """Create a token and store the audit event of its creation, in one transaction."""
    require_org(conn, org)
    token, record = create_token(conn, role, name, org, expires_at_ms)
    append_events(conn, audit(record), org)
    return token, record


def revoke_token(conn: Connection, token_id: str, scope: str | None, audit: TokenAudit) -> TokenRecord:
    """Revoke a token (again: nothing changes) with the audit event of it."""
    record = visible_token(conn, token_id, scope)
    if record.revoked_at_ms is not None:
        return record
    now = _now_ms()
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at_ms=now))
    revoked = replace(record, revoked_at_ms=now)
    append_events(conn, audit(revoked), record.org)
    return revoked


def rotate_token(
    conn: Connection, token_id: str, scope: str | None, audit: TokenAudit
) -> tuple[str, TokenRecord]:
    """A new token with the same name, role, organization and expiry; the old one revoked,
    in one transaction with the audit event (which names both)."""
    old = visible_token(conn, token_id, scope)
    if old.revoked_at_ms is not None:
        raise NotFound(f"token {token_id} is revoked; create a new one")
    now = _now_ms()
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at_ms=now))
    token, record = create_token(conn, Role(old.role), old.name, old.org, old.expires_at_ms)
    append_events(conn, audit(record), old.org)
    return token, record


def count_tokens(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(api_tokens)).scalar_one())


def issue_token(
    db: Database, role: Role, name: str, org: str | None = None, expires_at_ms: int | None = None
) -> str:
    """A new token in a transaction of its own (blocking: the CLI's)."""
    with db.writing() as conn:
        require_org(conn, org)
        return create_token(conn, role, name, org, expires_at_ms)[0]


def cli_list_tokens(db: Database) -> list[TokenRecord]:
    """Every token (blocking: the CLI's)."""
    with db.reading() as conn:
        return list_tokens(conn, None)


def cli_revoke_token(db: Database, token_id: str, audit: TokenAudit) -> TokenRecord:
    """Revoke a token with its audit event (blocking: the CLI's)."""
    with db.writing() as conn:
        return revoke_token(conn, token_id, None, audit)


def issue_first_tokens(db: Database) -> tuple[str, str] | None:
    """On an empty store, one admin and one ingest token (in one transaction); else None."""
    with db.writing() as conn:
        if count_tokens(conn) > 0:
            return None
        return (
            create_token(conn, Role.ADMIN, "initial admin token")[0],
            create_token(conn, Role.INGEST, "initial ingest token")[0],
        )
