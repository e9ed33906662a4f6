"""What admins do: destinations (create, change, pause, delete, test) and recovery (history,
dead letters, replay), API tokens, organizations, people and their sign-in.

Called by `api` (and the admin panel to come), never by `delivery`. Each change is validated
here, then stored with its audit event by one `store` transaction.
"""

from auditrelay.services.audit import (
    RequestContext,
    audit_event,
    org_audit_event,
    summary,
    token_audit_event,
    user_audit_event,
)
from auditrelay.services.destinations import DestinationService
from auditrelay.services.events import EXPORT_CAP, EventService
from auditrelay.services.orgs import ORG_NAME, ORG_NAME_RULE, OrgCreate, OrgPatch, OrgService, render_org
from auditrelay.services.people import (
    MembershipIn,
    SignIn,
    SignInService,
    UserCreate,
    UserPatch,
    UserService,
    check_email,
    render_session,
    render_user,
)
from auditrelay.services.recovery import RecoveryService
from auditrelay.services.schemas import (
    EVENT_TYPE,
    MAX_HEADERS,
    DestinationCreate,
    DestinationPatch,
    ReplayRequest,
    ResendRequest,
)
from auditrelay.services.sso import FLOW_SECONDS, SsoService
from auditrelay.services.tokens import TokenCreate, TokenService, parse_duration, render_token

__all__ = [
    "EVENT_TYPE",
    "EXPORT_CAP",
    "FLOW_SECONDS",
    "MAX_HEADERS",
    "ORG_NAME",
    "ORG_NAME_RULE",
    "DestinationCreate",
    "DestinationPatch",
    "DestinationService",
    "EventService",
    "MembershipIn",
    "OrgCreate",
    "OrgPatch",
    "OrgService",
    "RecoveryService",
    "ReplayRequest",
    "RequestContext",
    "ResendRequest",
    "SignIn",
    "SignInService",
    "SsoService",
    "TokenCreate",
    "TokenService",
    "UserCreate",
    "UserPatch",
    "UserService",
    "audit_event",
    "check_email",
    "org_audit_event",
    "parse_duration",
    "render_org",
    "render_session",
    "render_token",
    "render_user",
    "summary",
    "token_audit_event",
    "user_audit_event",
]
