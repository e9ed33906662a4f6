"""What admins do: destinations (create, change, pause, delete, test) and recovery (history,
dead letters, replay); the tokens, people and organizations to come land here too.

Called by `api` (and the admin panel to come), never by `delivery`. Each change is validated
here, then stored with its audit event by one `store` transaction.
"""

from auditrelay.services.audit import RequestContext, audit_event, summary, token_audit_event
from auditrelay.services.destinations import DestinationService
from auditrelay.services.recovery import RecoveryService
from auditrelay.services.schemas import (
    EVENT_TYPE,
    MAX_HEADERS,
    DestinationCreate,
    DestinationPatch,
    ReplayRequest,
    ResendRequest,
)
from auditrelay.services.tokens import TokenCreate, TokenService, parse_duration, render_token

__all__ = [
    "EVENT_TYPE",
    "MAX_HEADERS",
    "DestinationCreate",
    "DestinationPatch",
    "DestinationService",
    "RecoveryService",
    "ReplayRequest",
    "RequestContext",
    "ResendRequest",
    "TokenCreate",
    "TokenService",
    "audit_event",
    "parse_duration",
    "render_token",
    "summary",
    "token_audit_event",
]
