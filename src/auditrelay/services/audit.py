"""The audit events of admin changes (`audit_stream.destination.*`), built before storing.

Every change to a destination is itself an event of the log, streamed like any other; the
store writes it in the change's own transaction (`store.destination_changes`). Secrets never
appear in these events: `changes.diff` reduces them to "changed".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from auditrelay.events import ValidEvent, validate_events
from auditrelay.model import Destination, TokenRecord
from auditrelay.security import Principal


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
    return _event(f"audit_stream.destination.{verb}", entity, principal, ctx, details)


def token_audit_event(verb: str, token: TokenRecord, principal: Principal, ctx: RequestContext) -> ValidEvent:
    """The event `audit_stream.token.<verb>` (create, revoke, rotate): never the secret."""
    details = {"token": token_summary(token)}
    entity = {"type": "api_token", "id": token.id, "path": token.org or ""}
    return _event(f"audit_stream.token.{verb}", entity, principal, ctx, details)


def token_summary(token: TokenRecord) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "role": token.role, "org": token.org, "prefix": token.prefix}


def _event(
    action: str, entity: dict[str, Any], principal: Principal, ctx: RequestContext, details: dict[str, Any]
) -> ValidEvent:
    context: dict[str, Any] = {}
    if ctx.ip_address and _is_ip(ctx.ip_address):
        context["ip_address"] = ctx.ip_address
    if ctx.user_agent:
        context["user_agent"] = ctx.user_agent[:1000]
    raw = {
        "action": action,
        "actor": {"type": "service", "token": {"id": principal.token_id, "name": principal.name}},
        "context": context,
        "details": details,
        "entity": entity,
    }
    # Provenance: the relay's own event records the token that acted.
    return replace(validate_events([raw])[0], token_id=principal.token_id or None)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
