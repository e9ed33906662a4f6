"""The audit events of admin changes (`audit_stream.destination.*`, `.token.*`, `.org.*`,
`.user.*`), built before storing.

Every change to a destination is itself an event of the log, streamed like any other; the
store writes it in the change's own transaction (`store.destination_changes`). Secrets never
appear in these events: `changes.diff` reduces them to "changed".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import msgspec

from auditrelay.events import ValidEvent, validate_events
from auditrelay.model import Destination, OrgRecord, TokenRecord, UserRecord
from auditrelay.security import Principal, Role


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Where an admin request came from, recorded in the audit event it causes."""

    ip_address: str | None
    user_agent: str | None


def summary(destination: Destination) -> dict[str, Any]:
    return {"id": destination.id, "name": destination.name, "kind": destination.kind}


def audit_event(
    verb: str, destination: Destination, principal: Principal, ctx: RequestContext, details: dict[str, Any]
) -> ValidEvent:
    """The event `audit_stream.destination.<verb>`, acted by the principal's token."""
    entity = {"type": "audit_stream_destination", "id": destination.id, "path": destination.org or ""}
    return _event(f"audit_stream.destination.{verb}", entity, principal, ctx, details, destination.org)


def token_audit_event(verb: str, token: TokenRecord, principal: Principal, ctx: RequestContext) -> ValidEvent:
    """The event `audit_stream.token.<verb>` (create, revoke, rotate): never the secret."""
    details = {"token": token_summary(token)}
    entity = {"type": "api_token", "id": token.id, "path": token.org or ""}
    return _event(f"audit_stream.token.{verb}", entity, principal, ctx, details, token.org)


def token_summary(token: TokenRecord) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "role": token.role, "org": token.org, "prefix": token.prefix}


def org_audit_event(
    verb: str,
    org: OrgRecord,
    principal: Principal,
    ctx: RequestContext,
    details: dict[str, Any] | None = None,
) -> ValidEvent:
    """The event `audit_stream.org.<verb>` (create, rename, delete)."""
    entity = {"type": "organization", "id": org.name, "path": org.name}
    body = {"org": {"name": org.name, "title": org.title}, **(details or {})}
    return _event(f"audit_stream.org.{verb}", entity, principal, ctx, body, org.name)


def user_audit_event(
    verb: str,
    user: UserRecord,
    principal: Principal | None,
    ctx: RequestContext,
    details: dict[str, Any] | None = None,
) -> ValidEvent:
    """The event `audit_stream.user.<verb>` (create, update, delete, sign_in, sign_out,
    sign_in_refused). It belongs to the acting owner's organization, or to the instance.
    Sign-ins are acted by the person themselves (`principal` None)."""
    entity = {"type": "user", "id": user.id, "path": principal.org or "" if principal else ""}
    body = {"user": user_summary(user), **(details or {})}
    actor = principal or Principal("", user.email, Role.VIEWER, None, user.id)
    return _event(f"audit_stream.user.{verb}", entity, actor, ctx, body, actor.org)


def user_summary(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "admin": user.is_admin,
        "locked": user.locked,
        "memberships": [{"org": m.org, "role": m.role} for m in user.memberships],
    }


def _event(
    action: str,
    entity: dict[str, Any],
    principal: Principal,
    ctx: RequestContext,
    details: dict[str, Any],
    org: str | None = None,
) -> ValidEvent:
    context: dict[str, Any] = {}
    if ctx.ip_address and _is_ip(ctx.ip_address):
        context["ip_address"] = ctx.ip_address
    if ctx.user_agent:
        context["user_agent"] = ctx.user_agent[:1000]
    raw: dict[str, Any] = {
        "action": action,
        "actor": principal.actor(),
        "context": context,
        "details": details,
        "entity": entity,
    }
    if org is not None:
        raw["org"] = org
    # Provenance: the relay's own event records the token that acted.
    return msgspec.structs.replace(validate_events([raw])[0], token_id=principal.token_id or None)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
