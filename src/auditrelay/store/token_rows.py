"""SQL for API tokens: stored as SHA-256 digests, looked up by digest."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import Connection, func, insert, select

from auditrelay.security import Principal, Role, digest, new_token
from auditrelay.store.database import Database
from auditrelay.store.tables import api_tokens


def create_token(conn: Connection, role: Role, name: str, org: str | None = None) -> str:
    """Store a new token's digest and return the token, which is never stored itself."""
    token = new_token(role)
    conn.execute(
        insert(api_tokens).values(
            id=str(uuid.uuid4()),
            name=name,
            role=role.value,
            org=org,
            token_sha256=digest(token),
            hint=token[-4:],
            created_at_ms=int(time.time() * 1000),
        )
    )
    return token


def find_principal(conn: Connection, token: str) -> Principal | None:
    row = conn.execute(
        select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.org).where(
            api_tokens.c.token_sha256 == digest(token), api_tokens.c.revoked_at_ms.is_(None)
        )
    ).first()
    if row is None:
        return None
    return Principal(token_id=row.id, name=row.name, role=Role(row.role), org=row.org)


def count_tokens(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(api_tokens)).scalar_one())


def issue_token(db: Database, role: Role, name: str, org: str | None = None) -> str:
    """A new token in a transaction of its own (blocking: the CLI's)."""
    with db.writing() as conn:
        return create_token(conn, role, name, org)


def issue_first_tokens(db: Database) -> tuple[str, str] | None:
    """On an empty store, one admin and one ingest token (in one transaction); else None."""
    with db.writing() as conn:
        if count_tokens(conn) > 0:
            return None
        return (
            create_token(conn, Role.ADMIN, "initial admin token"),
            create_token(conn, Role.INGEST, "initial ingest token"),
        )
