"""API tokens for scripts and applications: created, listed, revoked and rotated by admins
(any token) and owners (their organization's, below admin). Each change is an audit event
(`audit_stream.token.*`) stored in the change's transaction.

A token is shown once, when created or rotated; listings show its recognisable prefix and
its last use, never the secret.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditrelay.errors import FieldError, Forbidden, ValidationError
from auditrelay.model import TokenRecord
from auditrelay.security import Principal, Role
from auditrelay.services.audit import RequestContext, token_audit_event
from auditrelay.store import Database, add_token, iso_from_ms, list_tokens, revoke_token, rotate_token

#: `--expires-in` / `expires_in`: a number and a unit (s, m, h, d).
DURATION = re.compile(r"\s*(\d+)\s*([smhd])\s*", re.ASCII)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The longest a token may be made to last: a hundred years (36500d). Longer would not fit
#: the expiry column (milliseconds in 64 bits) or the four-digit years it is shown with.
MAX_DURATION_SECONDS = 36_500 * 86_400


def parse_duration(text: str) -> int:
    """Seconds in '90d', '12h', '30m' or '45s'; ValueError otherwise."""
    match = DURATION.fullmatch(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError("must be a positive number followed by s, m, h or d, such as '90d'")
    if len(match.group(1)) > 12 or int(match.group(1)) * UNIT_SECONDS[match.group(2)] > MAX_DURATION_SECONDS:
        raise ValueError("must be at most 36500d (a hundred years); omit it for a token that never expires")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Role
    org: str | None = Field(default=None, min_length=1, max_length=200)
    #: How long it works, such as "90d"; absent: until revoked.
    expires_in: str | None = None

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


def render_token(token: TokenRecord) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "role": token.role,
        "org": token.org,
        "prefix": token.prefix,
        "created_at": iso_from_ms(token.created_at_ms),
        "last_used_at": iso_from_ms(token.last_used_at_ms),
        "expires_at": iso_from_ms(token.expires_at_ms),
        "revoked_at": iso_from_ms(token.revoked_at_ms),
    }


class TokenService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, principal: Principal) -> list[dict[str, Any]]:
        _may_manage_tokens(principal)
        records = await self._db.read(list_tokens, principal.org)
        return [render_token(r) for r in records]

    async def create(self, principal: Principal, body: TokenCreate, ctx: RequestContext) -> dict[str, Any]:
        _may_manage_tokens(principal)
        org = body.org
        if principal.role is Role.OWNER:
            if body.role is Role.ADMIN:
                raise Forbidden("an owner cannot create admin tokens; ask an instance admin")
            if org is not None and org != principal.org:
                raise Forbidden("an owner creates tokens for its own organization only")
            org = principal.org
        if body.role is Role.OWNER and org is None:
            raise ValidationError(
                "an owner token belongs to one organization",
                [FieldError("org", "is required for role owner")],
            )
        if body.role is Role.ADMIN and org is not None:
            raise ValidationError(
                "an admin token is instance-wide",
                [FieldError("org", "must be absent for role admin (use role owner for one organization)")],
            )
        expires_at = (
            int((time.time() + parse_duration(body.expires_in)) * 1000)
            if body.expires_in is not None
            else None
        )
        token, record = await self._db.write(
            add_token,
            body.role,
            body.name,
            org,
            expires_at,
            lambda r: [token_audit_event("create", r, principal, ctx)],
        )
        return {**render_token(record), "token": token}

    async def revoke(self, principal: Principal, token_id: str, ctx: RequestContext) -> dict[str, Any]:
        _may_manage_tokens(principal)
        record = await self._db.write(
            revoke_token, token_id, principal.org, lambda r: [token_audit_event("revoke", r, principal, ctx)]
        )
        return render_token(record)

    async def rotate(self, principal: Principal, token_id: str, ctx: RequestContext) -> dict[str, Any]:
        _may_manage_tokens(principal)

        def audit(new: TokenRecord) -> list[Any]:
            event = token_audit_event("rotate", new, principal, ctx)
            return [event]

        token, record = await self._db.write(rotate_token, token_id, principal.org, audit)
        return {**render_token(record), "token": token, "replaces": token_id}


def _may_manage_tokens(principal: Principal) -> None:
    if not principal.role.manages:
        raise Forbidden(f"managing tokens needs an admin or owner token, not {principal.role.value}")
