"""The audit events of admin changes (`audit_stream.destination.*`), built before storing.

Every change to a destination is itself an event of the log, streamed like any other; the
store writes it in the change's own transaction (`store.destination_changes`). Secrets never
appear in these events: `changes.diff` reduces them to "changed".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from auditrelay.events import ValidEvent, validate_events
from auditrelay.model import Destination
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
    context: dict[str, Any] = {}
    if ctx.ip_address and _is_ip(ctx.ip_address):
        context["ip_address"] = ctx.ip_address
    if ctx.user_agent:
        context["user_agent"] = ctx.user_agent[:1000]
    raw = {
        "action": f"audit_stream.destination.{verb}",
        "actor": {"type": "service", "token": {"id": principal.token_id, "name": principal.name}},
        "context": context,
        "details": details,
        "entity": {
            "type": "audit_stream_destination",
            "id": destination.id,
            "path": destination.org or "",
        },
    }
    return validate_events([raw])[0]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
