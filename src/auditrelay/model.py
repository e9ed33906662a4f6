"""The values every layer shares: stored events, destinations, delivery state and records.

Plain frozen dataclasses and enums, importing nothing of the project, so the pure parts
(destination kinds, the delivery policy) can use them without loading the database layer
or an HTTP client. The one value made per event on the delivery path, `StoredEvent`, is a
`msgspec.Struct` instead: a frozen dataclass's `__init__` cost 2.1 µs, the struct's 0.17.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec

#: The largest integer a column holds (SQLite's INTEGER and PostgreSQL's BIGINT are signed
#: 64 bits): sequence numbers and ids the API is given are bounded by it, so a larger one is
#: the caller's error, not the database driver's overflow.
MAX_STORED_INT = 2**63 - 1
#: The largest dead letter id: its column is an INTEGER, 32 bits on PostgreSQL.
MAX_DEAD_LETTER_ID = 2**31 - 1


class StoredEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as delivery reads it: the filterable columns and the stored bytes.

    Made for every event read (see the module's docstring); it holds no containers, so the
    garbage collector need not track it."""

    seq: int
    org: str | None
    action: str
    entity_path: str | None
    occurred_at_ms: int
    body: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: int
    duplicates: int
    head: int
    #: Ids of events not stored because the log holds one with that id (sent before, or
    #: earlier in the same batch), in batch order.
    already_stored: tuple[str, ...] = ()
    #: Of those, the ids whose stored event differs from the one sent now (it is kept).
    conflicts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as listings show it: never the secret, only a recognisable prefix."""

    id: str
    name: str
    role: str
    org: str | None
    prefix: str
    created_at_ms: int
    last_used_at_ms: int | None
    expires_at_ms: int | None
    revoked_at_ms: int | None


@dataclass(frozen=True, slots=True)
class OrgRecord:
    """An organization, with how much it holds."""

    name: str
    title: str
    created_at_ms: int
    destinations: int = 0
    tokens: int = 0
    members: int = 0


@dataclass(frozen=True, slots=True)
class Membership:
    org: str
    role: str


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A person, as listings show them: never the password's hash."""

    id: str
    email: str
    name: str | None
    is_admin: bool
    locked: bool
    has_password: bool
    sso_linked: bool
    created_at_ms: int
    last_sign_in_at_ms: int | None
    memberships: tuple[Membership, ...] = ()


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """A batch is flushed at `max_events` or `max_bytes`, or `linger_ms` after the last request
    was sent, whichever first (so events after a quiet spell go at once)."""

    max_events: int
    max_bytes: int
    linger_ms: int


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How requests go out: up to `max_in_flight` at once (the window adapts below it), or,
    when `ordered`, one at a time, so the receiver sees every request in log order."""

    ordered: bool = False
    max_in_flight: int = 100


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How a destination's HTTPS connections are made: the CAs trusted (PEM; None: the
    system's store), a client certificate and key for mutual TLS, the lowest protocol
    version, and whether the server's certificate is checked at all."""

    ca_bundle: str | None = None
    client_certificate: str | None = None
    #: A secret: sealed at rest, never shown.
    client_key: str | None = None
    min_version: str = "1.2"
    verify: bool = True


@dataclass(frozen=True, slots=True)
class Destination:
    """A destination as delivery and the kinds see it: settings resolved, secrets open."""

    id: str
    org: str | None
    name: str
    kind: str
    url: str
    token: str | None
    headers: tuple[Header, ...]
    event_types: tuple[str, ...]
    namespaces: tuple[str, ...]
    content_type: str | None
    verification_token: str
    active: bool
    options: dict[str, Any] = field(default_factory=dict)
    batch: BatchSettings = BatchSettings(max_events=500, max_bytes=1_000_000, linger_ms=5)
    #: Why its secrets could not be opened (none of this process's keys sealed them); then
    #: `url`, `token` and secret header values are empty, and it can be listed and deleted
    #: but neither changed nor delivered to.
    secrets_unreadable: str | None = None
    delivery: DeliverySettings = DeliverySettings()
    #: Standard Webhooks signing secrets (`whsec_...`): requests are signed with the current
    #: one and, during a rotation, with the previous one too. None: requests are not signed.
    signing_secret: str | None = None
    signing_secret_previous: str | None = None
    tls: TlsSettings = TlsSettings()
    version: int = 1
    created_at_ms: int = 0
    updated_at_ms: int = 0

    @property
    def filtered(self) -> bool:
        return bool(self.event_types or self.namespaces)


@dataclass(frozen=True, slots=True)
class DestinationVersion:
    """What the delivery supervisor polls: a new version restarts the loop with the new
    settings; a newer retry request wakes it."""

    version: int
    active: bool
    retry_requested_at_ms: int


class DeliveryState(StrEnum):
    """The state a destination's status shows (stored as its value)."""

    #: Nothing delivered yet (a new destination, or one whose filters matched nothing so far).
    PENDING = "pending"
    #: The last attempt was accepted.
    HEALTHY = "healthy"
    #: A request has been in flight, unanswered, for longer than the slow threshold.
    SLOW = "slow"
    #: The last attempt failed in a way worth retrying (network, 5xx, 429, refusals).
    FAILING = "failing"
    #: 401/403: the credentials are wrong; retried slowly, never dropped.
    UNAUTHORIZED = "unauthorized"
    #: The breaker holds the stream: too many events in a row were refused and set aside.
    HELD = "held"
    #: Stopped by an admin; the cursor is kept.
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class StateChange:
    """A destination's state changed: written with the change, as an audit event
    (`audit_stream.destination.health`)."""

    before: DeliveryState
    after: DeliveryState
    reason: str


@dataclass(frozen=True, slots=True)
class InFlight:
    """The requests a destination has sent and not had answered, as last written."""

    requests: int = 0
    #: When the oldest of them was sent (wall-clock ms); None when none is in flight.
    oldest_sent_at_ms: int | None = None


class ReplayState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    cursor: int
    delivered_total: int
    state: DeliveryState
    last_success_at_ms: int | None
    last_error_at_ms: int | None
    last_error_status: int | None
    last_error_message: str | None
    consecutive_failures: int
    next_retry_at_ms: int | None
    #: The breaker (see `delivery.policy.Breaker`): dead letters in a row, and since when the
    #: stream is held (None: not held).
    dead_letters_in_a_row: int = 0
    held_since_ms: int | None = None
    in_flight: int = 0
    oldest_in_flight_ms: int | None = None
    #: Events retention removed before the destination had them (in all), and the latest
    #: such removal's range and time.
    lost_to_retention: int = 0
    lost_from_seq: int | None = None
    lost_to_seq: int | None = None
    lost_at_ms: int | None = None


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What the breaker keeps across restarts."""

    dead_letters_in_a_row: int = 0
    held_since_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt, as the capped history keeps it."""

    at_ms: int
    events: int
    bytes: int
    http_status: int | None
    latency_ms: float
    outcome: str
    error: str | None
    replay: bool = False


@dataclass(frozen=True, slots=True)
class MinuteFigures:
    """One minute of a destination's delivery: events delivered in it, and its lag as
    sampled in it (None when no sample was taken that minute)."""

    minute_ms: int
    delivered: int
    lag_events: int | None
    lag_ms: int | None


@dataclass(frozen=True, slots=True)
class ReplayJob:
    id: int
    destination_id: str
    from_seq: int
    to_seq: int
    cursor: int
    delivered: int
    state: ReplayState
    created_at_ms: int
    finished_at_ms: int | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event a destination refused on its own, again and again, kept with its answer."""

    id: int
    destination_id: str
    seq: int
    event_id: str
    body: bytes
    failed_at_ms: int
    attempts: int
    http_status: int | None
    error: str


@dataclass(frozen=True, slots=True)
class DestinationOverview:
    """A destination with what the API shows beside it, read in one transaction."""

    destination: Destination
    status: DeliveryStatus | None
    #: The newest sequence number of the events the destination may receive: the log's, or
    #: for an organization's destination, that organization's newest event's.
    head: int
    #: Events after the cursor that the destination may receive (its organization's only,
    #: for an organization's destination; its filters are not applied).
    lag: int = 0
    #: When the first event the destination still owes was stored; None when caught up.
    oldest_pending_ms: int | None = None
    dead_letters: int = 0
    #: Events delivered over about the last minute (from the per-minute counts).
    delivered_last_minute: float = 0.0
