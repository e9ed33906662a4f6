"""Organizations (Grist's team sites, GitLab's top-level groups): created, renamed and
removed by instance admins; listed by everyone who reads, each seeing their own.

An organization's `name` is what tokens, destinations, memberships and events carry (the
`org` field); it never changes. Renaming changes its `title`, what people read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditrelay.errors import Forbidden
from auditrelay.model import OrgRecord
from auditrelay.security import Principal, Role
from auditrelay.services.audit import RequestContext, audit_event, org_audit_event
from auditrelay.store import (
    Database,
    DestinationRows,
    create_org,
    delete_org,
    iso_from_ms,
    list_orgs,
    rename_org,
    visible_org,
)

#: Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit: safe in a
#: URL, a header, a shell and a SIEM's field, and the same however it is typed.
ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
ORG_NAME_RULE = "must be 1 to 63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


def check_org_name(value: str) -> str:
    if not ORG_NAME.fullmatch(value):
        raise ValueError(ORG_NAME_RULE)
    return value


class OrgCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    #: What people read; the name when absent.
    title: str | None = Field(default=None, min_length=1, max_length=200)

    _name = field_validator("name")(check_org_name)


class OrgPatch(BaseModel):
    """Renaming: the title changes, the name (the key events carry) does not."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)


def render_org(org: OrgRecord, principal: Principal) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": org.name,
        "title": org.title,
        "created_at": iso_from_ms(org.created_at_ms) if org.created_at_ms else None,
        "destinations": org.destinations,
    }
    if principal.role.manages:  # viewers read streams, not who holds the keys
        body["tokens"] = org.tokens
        body["members"] = org.members
    if principal.user_id is not None:
        roles = dict(principal.memberships)
        if org.name in roles:
            body["your_role"] = roles[org.name].value
    return body


class OrgService:
    def __init__(
        self, db: Database, rows: DestinationRows, on_destinations_removed: Callable[[], None] = lambda: None
    ) -> None:
        self._db = db
        self._rows = rows
        self._on_destinations_removed = on_destinations_removed

    async def list(self, principal: Principal) -> list[dict[str, Any]]:
        _may_read(principal)
        records = await self._db.read(list_orgs, principal.orgs_visible)
        return [render_org(r, principal) for r in records]

    async def get(self, principal: Principal, name: str) -> dict[str, Any]:
        _may_read(principal)
        record = await self._db.read(visible_org, name, principal.orgs_visible)
        return render_org(record, principal)

    async def create(self, principal: Principal, body: OrgCreate, ctx: RequestContext) -> dict[str, Any]:
        _admin_only(principal, "create organizations")
        record = await self._db.write(
            create_org, body.name, body.title, lambda r: [org_audit_event("create", r, principal, ctx)]
        )
        return render_org(record, principal)

    async def rename(
        self, principal: Principal, name: str, body: OrgPatch, ctx: RequestContext
    ) -> dict[str, Any]:
        _admin_only(principal, "rename organizations")
        record = await self._db.write(
            rename_org, name, body.title, lambda r: [org_audit_event("rename", r, principal, ctx)]
        )
        return render_org(record, principal)

    async def delete(self, principal: Principal, name: str, ctx: RequestContext) -> dict[str, Any]:
        _admin_only(principal, "remove organizations")
        record = await self._db.write(
            delete_org,
            self._rows,
            name,
            lambda r: [
                org_audit_event(
                    "delete",
                    r,
                    principal,
                    ctx,
                    {
                        "removed": {"destinations": r.destinations, "members": r.members},
                        "revoked_tokens": r.tokens,
                    },
                )
            ],
            lambda d: [audit_event("delete", d, principal, ctx, {"reason": "organization removed"})],
        )
        if record.destinations:
            self._on_destinations_removed()
        return render_org(record, principal)


def _may_read(principal: Principal) -> None:
    if not principal.role.reads:
        raise Forbidden("this route needs an admin, owner or viewer; ingest tokens can only send events")


def _admin_only(principal: Principal, what: str) -> None:
    if principal.role is not Role.ADMIN:
        raise Forbidden(f"only instance admins {what}")
