"""Who calls the API: roles, principals, and the tokens that prove them (no storage here).

Only the SHA-256 of a token is stored (`store.token_rows`); the token itself is shown once,
when created. Tokens are long random strings, so a plain hash is enough (no per-token salt).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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
    """Who is calling: a bearer token, or a person signed in (a session cookie).

    `role` and `org` are what this request may do and where: a person in several
    organizations acts in one at a time (the one they chose, see `api.auth`)."""

    token_id: str
    name: str
    role: Role
    org: str | None
    #: The person signed in (then `token_id` is empty and `name` is their email).
    user_id: str | None = None
    #: A person's organizations and their role in each; empty for tokens and admins.
    memberships: tuple[tuple[str, Role], ...] = ()

    @property
    def orgs_visible(self) -> tuple[str, ...] | None:
        """The organizations this caller may see: None for all (instance-wide)."""
        if self.org is None:
            return None
        if self.user_id is not None:
            return tuple(org for org, _ in self.memberships)
        return (self.org,)

    def actor(self) -> dict[str, object]:
        """Who acted, as the relay's own audit events name them."""
        if self.user_id is not None:
            return {"type": "user", "user": {"id": self.user_id, "email": self.name}}
        return {"type": "service", "token": {"id": self.token_id, "name": self.name}}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(role: Role) -> str:
    """A fresh random token for `role`, recognisable by its prefix."""
    return TOKEN_PREFIX[role.value] + secrets.token_urlsafe(32)


#: A person's session travels in this cookie: `Secure` (HTTPS, and http://localhost, only),
#: `HttpOnly` (no script reads it), `SameSite=Lax` (not sent with another site's form posts;
#: sent when the identity provider redirects back).
SESSION_COOKIE = "auditrelay_session"


def session_cookie_attributes(secure: bool, session_hours: float) -> dict[str, Any]:
    """The attributes the API and the admin panel set the session cookie with."""
    return {
        "max_age": int(session_hours * 3600),
        "path": "/",
        "secure": secure,
        "httponly": True,
        "samesite": "lax",
    }


def new_session_secret() -> str:
    """A session cookie's value or a CSRF token: 256 random bits."""
    return secrets.token_urlsafe(32)


def shown_prefix(token: str, role: Role) -> str:
    """What listings show of a token: its role prefix and its first random characters."""
    return token[: len(TOKEN_PREFIX[role.value]) + SHOWN_RANDOM_CHARS]
