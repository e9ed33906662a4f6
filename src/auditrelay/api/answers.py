"""What each admin route answers, as models for the OpenAPI document only.

The routes build their answers as plain dicts (`services.rendering`, `services.tokens`,
`services.orgs`, `services.people`, `services.destinations.send_test`, the log browser's
hand-built page) and send them as they are: these models are given to the route decorators
as `responses={status: {"model": ...}}`, so clients and the property-based test know the
shape, and nothing is validated or re-serialized by them at runtime. The routes returning
dicts also say `response_model=None`: otherwise FastAPI takes their `dict[str, Any]`
annotation for a response model and writes its loose schema beside the reference. Keep
the models in step with the code that builds the answers
(`tests/e2e/test_answers_match_the_document.py` checks real answers against the document).

Every key those builders always write is required, with `X | None` where it may be null;
keys written only sometimes are optional (default None, documented as absent or of their
type, never null) and their description says when they appear. Every model forbids other
keys: each answer is a fixed dict literal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from auditrelay.destinations import Outcome
from auditrelay.model import DeliveryState, ReplayState
from auditrelay.security import Role

#: A stored event's body, as the log keeps it (normalised: `id` and `timestamp` always
#: present). `allOf` around the reference: pydantic resolves a bare `$ref` among its own
#: models, and the event schema is added to the document by `docs.build_openapi`.
StoredEventBody = Annotated[
    dict[str, Any], WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/AuditEvent"}]})
]
MemberRole = Literal["owner", "viewer"]
#: Times are RFC 3339 UTC with milliseconds (`store.iso_from_ms`), e.g. 2024-11-13T06:00:51.518Z.
Time = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- destinations ----------------------------------------------------------------------------


class DestinationHeader(_Answer):
    """A custom header sent with every request; a secret one's value is masked."""

    name: str
    value: str = Field(description="the value; for a secret header `********` and its last 4 characters")
    secret: bool


class DestinationBatch(_Answer):
    """When a batch is flushed: at `max_events` or `max_bytes`, or after `linger_ms`."""

    max_events: int
    max_bytes: int
    linger_ms: int


class DestinationDelivery(_Answer):
    """How requests go out: up to `max_in_flight` at once, or one at a time when `ordered`."""

    ordered: bool
    max_in_flight: int


class DestinationTls(_Answer):
    """How HTTPS connections to the destination are made."""

    ca_bundle: str | None = Field(description="PEM certificates of the CAs trusted; null: the system's store")
    client_certificate: str | None = Field(description="PEM client certificate for mutual TLS, or null")
    client_key: Literal["********"] | None = Field(
        description="write-only: `********` when a client key is set, null when none is"
    )
    min_version: Literal["1.2", "1.3"]
    verify: bool = Field(description="whether the server's certificate and name are checked")


class LastError(_Answer):
    """The latest failed attempt."""

    at: Time
    status: int | None = Field(description="the HTTP status, null when no answer came")
    message: str | None


class RetentionLoss(_Answer):
    """Events retention removed before the destination had them."""

    events: int = Field(description="how many, in all")
    from_seq: int | None = Field(description="the first of the latest such removal")
    to_seq: int | None = Field(description="the last of the latest such removal")
    at: Time | None = Field(description="when the latest such removal happened")


class DestinationStatus(_Answer):
    """Where delivery stands: counted over the events the destination may receive."""

    state: DeliveryState
    cursor: int = Field(description="the last sequence number delivered")
    head: int = Field(description="the newest sequence number the destination may receive")
    lag: int = Field(description="events after the cursor (before filters)")
    lag_seconds: float = Field(description="age of the oldest event still owed; 0 when caught up")
    dead_letters: int
    delivered_total: int
    last_success_at: Time | None
    last_error: LastError | None
    consecutive_failures: int
    next_retry_at: Time | None = Field(description="when the next attempt comes; null when paused")
    in_flight: int = Field(description="requests sent and not answered, as last written")
    oldest_in_flight_seconds: float | None
    events_per_second: float = Field(description="delivered, over about the last minute")
    lost_to_retention: RetentionLoss | None = Field(description="null when retention removed nothing owed")
    retention_warning: str | None = Field(
        description="said a day before retention's hard maximum removes events still owed"
    )


class Destination(_Answer):
    """A destination with its settings (secrets masked) and its delivery status."""

    id: str
    org: str | None = Field(description="its organization; null for an instance destination")
    name: str
    kind: str = Field(description="http, splunk_hec or sumo_logic")
    url: str = Field(
        description="user, password and query replaced by `********`; a secret URL (Sumo Logic's) "
        "keeps its scheme, host and last 4 characters only"
    )
    headers: list[DestinationHeader]
    event_types: list[str]
    namespaces: list[str]
    content_type: str | None
    active: bool
    options: dict[str, Any] = Field(description="the kind's own options (free-form per kind)")
    batch: DestinationBatch
    delivery: DestinationDelivery
    tls: DestinationTls
    token: str | None = Field(description="masked: `********` and its last 4 characters; null when none")
    signing_secret: str | None = Field(
        description="masked, except in the answer to the request that generated it; null: not signed"
    )
    signing_secret_previous: str | None = Field(
        description="masked; the secret still signing during a rotation"
    )
    verification_token: str
    warnings: list[str]
    filtered: bool = Field(description="whether event types or namespaces select what it receives")
    secrets_unreadable: str | None = Field(
        description="why this process cannot open its secrets; null when it can"
    )
    created_at: Time
    updated_at: Time
    status: DestinationStatus | SkipJsonSchema[None] = Field(
        default=None,
        description="absent (never null) only for a destination without a delivery status row",
    )


class DestinationList(_Answer):
    destinations: list[Destination]


class DestinationTestResult(_Answer):
    """What the destination answered to one test event, sent outside the log."""

    delivered: bool
    outcome: Outcome
    status_code: int | None = Field(description="the HTTP status, null when no answer came")
    message: str
    response_body: str = Field(description="the answer's first 2000 characters")
    latency_ms: float
    event_id: str = Field(description="the test event's id")


# -- attempts, dead letters, replays ------------------------------------------------------------


class DeliveryAttempt(_Answer):
    """One delivery attempt (one request), as the capped history keeps it."""

    at: Time
    events: int
    bytes: int
    status: int | None = Field(description="the HTTP status, null when no answer came")
    latency_ms: float
    outcome: Outcome
    error: str | None = Field(description="why it failed; null when delivered")
    replay: bool = Field(description="whether it was sent by a replay job")


class DeliveryList(_Answer):
    deliveries: list[DeliveryAttempt] = Field(description="newest first")


class DeadLetter(_Answer):
    """An event the destination refused on its own, set aside with its last answer."""

    id: int
    seq: int
    event_id: str
    failed_at: Time
    attempts: int
    status: int | None = Field(description="the HTTP status, null when no answer came")
    error: str
    event: StoredEventBody = Field(description="the stored event")


class DeadLetterPage(_Answer):
    dead_letters: list[DeadLetter]
    total: int = Field(description="every dead letter of the destination, not just this page's")


class ResendResult(_Answer):
    """One dead letter sent again."""

    id: int
    event_id: str
    delivered: bool = Field(description="accepted: it left the list")
    status: int | None = Field(description="the HTTP status, null when no answer came")
    message: str


class ResendAnswer(_Answer):
    results: list[ResendResult]
    remaining: int = Field(description="dead letters left for the destination")


class Replay(_Answer):
    """A replay job: a range of the log re-sent apart from the live stream."""

    id: int
    from_seq: int
    to_seq: int
    state: ReplayState
    progress: float = Field(description="from 0 to 1")
    delivered: int
    created_at: Time
    finished_at: Time | None


class ReplayList(_Answer):
    replays: list[Replay]


# -- tokens ----------------------------------------------------------------------------------


class Token(_Answer):
    """An API token as listings show it: its prefix, never the secret."""

    id: str
    name: str
    role: Role
    org: str | None = Field(description="its organization; null for an instance-wide token")
    prefix: str = Field(description="the role prefix and first random characters, to recognise it")
    created_at: Time
    last_used_at: Time | None
    expires_at: Time | None = Field(description="null: works until revoked")
    revoked_at: Time | None


class NewToken(Token):
    """A token just created: the answer holds the secret, once."""

    token: str = Field(description="the secret: shown in this answer only")


class RotatedToken(NewToken):
    """The token's new secret; the old token is revoked."""

    replaces: str = Field(description="the id of the revoked token")


class TokenList(_Answer):
    tokens: list[Token]


# -- organizations ---------------------------------------------------------------------------


class Org(_Answer):
    """An organization, with how much it holds."""

    name: str = Field(description="the key tokens, destinations and events carry; never changes")
    title: str
    created_at: Time | None = Field(description="null when the store has no creation time for it (0)")
    destinations: int
    tokens: int | SkipJsonSchema[None] = Field(
        default=None, description="present for admins and owners only (absent for viewers)"
    )
    members: int | SkipJsonSchema[None] = Field(
        default=None, description="present for admins and owners only (absent for viewers)"
    )
    your_role: MemberRole | SkipJsonSchema[None] = Field(
        default=None,
        description="present only when a signed-in person is a member of it: their role there",
    )


class OrgList(_Answer):
    orgs: list[Org]


# -- people and sessions --------------------------------------------------------------------


class Membership(_Answer):
    org: str
    role: MemberRole


class User(_Answer):
    """A person: never the password's hash. An owner sees only their organization's membership."""

    id: str
    email: str
    name: str | None
    admin: bool
    locked: bool
    password: bool = Field(description="whether a password is set")
    sso: bool = Field(description="whether single sign-on is linked")
    memberships: list[Membership]
    created_at: Time
    last_sign_in_at: Time | None


class UserList(_Answer):
    users: list[User]


class Session(_Answer):
    """Who is signed in, where they act, and the CSRF token their changes must carry."""

    user: User
    csrf_token: str = Field(description="send it in X-CSRF-Token with every change")
    via: Literal["password", "sso"]
    expires_at: Time
    role: Role | None = Field(description="the role the session acts with; null when it cannot act")
    org: str | None = Field(description="the organization it acts in; null: instance-wide (or none)")
    orgs: list[Membership] = Field(description="every organization the person belongs to")


class SignedOut(_Answer):
    signed_out: bool = Field(description="false when there was no session to end")


# -- the log browser ---------------------------------------------------------------------------


class BrowsedEvent(_Answer):
    seq: int
    received_at_ms: int
    token_id: str | None = Field(
        description="the API token that sent the event, or that made the change one of the relay's own "
        "audit events records; null when no token did"
    )
    event: StoredEventBody = Field(description="the stored event, as it was stored")


class EventPage(_Answer):
    """One page of the log, oldest first."""

    events: list[BrowsedEvent]
    next_after: int = Field(description="give it as `after` for the next page")
    head: int = Field(
        description="the newest sequence number of the events the caller may see (of `org`, when given)"
    )
