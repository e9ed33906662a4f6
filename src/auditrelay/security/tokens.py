"""API tokens: admin tokens manage destinations, ingest tokens only write events.

Only the SHA-256 of a token is stored; the token itself is shown once, when created.
Tokens are long random strings, so a plain hash is enough (no per-token salt needed).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection, func, insert, select

from auditrelay.store.tables import api_tokens

TOKEN_PREFIX = {"admin": "ar_admin_", "ingest": "ar_ingest_"}


class Role(StrEnum):
    ADMIN = "admin"
    INGEST = "ingest"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: resolved from a bearer token."""

    token_id: str
    name: str
    role: Role
    org: str | None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, role: Role, name: str, org: str | None = None) -> str:
    token = TOKEN_PREFIX[role.value] + secrets.token_urlsafe(32)
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
