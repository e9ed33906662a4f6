"""Who calls the API: roles, principals, and the tokens that prove them (no storage here).

Only the SHA-256 of a token is stored (`store.token_rows`); the token itself is shown once,
when created. Tokens are long random strings, so a plain hash is enough (no per-token salt).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

TOKEN_PREFIX = {"admin": "ar_admin_", "owner": "ar_owner_", "viewer": "ar_viewer_", "ingest": "ar_ingest_"}
#: How much of a token its listing shows: the role's prefix and a few random characters,
#: enough to recognise it, far too little to use it.
SHOWN_RANDOM_CHARS = 4


class Role(StrEnum):
    """What a token may do.

    - admin: everything, in every organization (an instance-wide token);
    - owner: manage one organization's destinations and tokens;
    - viewer: read status, events and history (of one organization, or of all), change nothing;
    - ingest: send events, nothing else.
    """

    ADMIN = "admin"
    OWNER = "owner"
    VIEWER = "viewer"
    INGEST = "ingest"

    @property
    def manages(self) -> bool:
        return self in (Role.ADMIN, Role.OWNER)

    @property
    def reads(self) -> bool:
        return self in (Role.ADMIN, Role.OWNER, Role.VIEWER)


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


def shown_prefix(token: str, role: Role) -> str:
    """What listings show of a token: its role prefix and its first random characters."""
    return token[: len(TOKEN_PREFIX[role.value]) + SHOWN_RANDOM_CHARS]
