"""Who calls the API: roles, principals, and the tokens that prove them (no storage here).

Only the SHA-256 of a token is stored (`store.token_rows`); the token itself is shown once,
when created. Tokens are long random strings, so a plain hash is enough (no per-token salt).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = {"admin": "ar_admin_", "ingest": "ar_ingest_"}


class Role(StrEnum):
    """Admin tokens manage destinations; ingest tokens only write events."""

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


def new_token(role: Role) -> str:
    """A fresh random token for `role`, recognisable by its prefix."""
    return TOKEN_PREFIX[role.value] + secrets.token_urlsafe(32)
