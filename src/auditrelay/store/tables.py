"""Table definitions (SQLAlchemy Core). Migrations in `migrations/versions` create them.

Times are stored as integer milliseconds since the epoch: the same on SQLite and
PostgreSQL, cheap to compare, and exact.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

#: One row holding the last sequence number handed out. Appends lock it, which makes
#: sequence order equal commit order on every backend (see docs/event-log.md).
log_head = Table(
    "log_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("head", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    #: Unique within an organization (and among the instance's own events), not across them.
    Column("id", String(36), nullable=False),
    Column("org", String(200), nullable=True),
    Column("action", String(200), nullable=False),
    Column("entity_path", Text, nullable=True),
    Column("occurred_at_ms", BigInteger, nullable=False),
    Column("received_at_ms", BigInteger, nullable=False),
    Column("body", LargeBinary, nullable=False),
    #: The token that sent it (provenance); None for the relay's own events.
    Column("token_id", String(36), nullable=True),
    Index("ix_events_received_at", "received_at_ms"),
    # One unique index for both rules (migration 0013): NULL (the instance) reads as '', never
    # an organization's name, so an instance event goes into one random-keyed B-tree, not two.
    Index("ux_events_id_key", "id", text("coalesce(org, '')"), unique=True),
    Index("ix_events_org_seq", "org", "seq"),
)

#: Organizations, keyed by the name that tokens, destinations, memberships and events carry.
#: The name never changes (events in the log and producers refer to it); renaming changes
#: the title, what people read.
orgs = Table(
    "orgs",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
)

#: People who sign in (the admin panel, or the API with a session cookie).
users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    #: Lower-cased: one person, one address, however it is typed.
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=True),
    #: argon2id; None for people who sign in only with single sign-on.
    Column("password_hash", Text, nullable=True),
    Column("is_admin", Boolean, nullable=False),
    #: A locked person cannot sign in, and their sessions stop working at once.
    Column("locked", Boolean, nullable=False),
    #: "<issuer> <sub>" of the single sign-on identity linked to this person.
    Column("sso_subject", String(400), nullable=True, unique=True),
    #: Wrong passwords in a row and when the last one was given: what slows guessing down.
    Column("failed_sign_ins", Integer, nullable=False, server_default="0"),
    Column("last_failed_at_ms", BigInteger, nullable=True),
    Column("last_sign_in_at_ms", BigInteger, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
)

#: A person's role in an organization (owner or viewer).
memberships = Table(
    "memberships",
    metadata,
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("org", String(200), ForeignKey("orgs.name", ondelete="CASCADE"), primary_key=True),
    Column("role", String(20), nullable=False),
    Index("ix_memberships_org", "org"),
)

#: Signed-in sessions, stored by the SHA-256 of the cookie's value (as tokens are).
sessions = Table(
    "sessions",
    metadata,
    Column("id_sha256", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    #: Sent back in the X-CSRF-Token header with every change made through the session.
    Column("csrf_token", String(64), nullable=False),
    #: "password" or "sso".
    Column("via", String(20), nullable=False),
    #: The organization the person is acting in (the panel's switcher), for people in several.
    Column("org", String(200), nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("last_seen_at_ms", BigInteger, nullable=False),
    Index("ix_sessions_user", "user_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("org", String(200), nullable=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("hint", String(20), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger, nullable=True),
    #: The role prefix and first random characters, to recognise the token in listings.
    Column("prefix", String(40), nullable=False, server_default=""),
    #: Written at most once a minute per process (`api.auth`).
    Column("last_used_at_ms", BigInteger, nullable=True),
    Column("expires_at_ms", BigInteger, nullable=True),
)

destinations = Table(
    "destinations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org", String(200), nullable=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(40), nullable=False),
    #: Non-secret settings as JSON (filters, headers without secret values, options).
    Column("config", Text, nullable=False),
    #: Secret settings (token, secret header values, Sumo URL) as encrypted JSON.
    Column("secrets", LargeBinary, nullable=False),
    #: The fingerprint of the key that sealed them (`security.secrets.fingerprint`).
    Column("key_id", String(12), nullable=True),
    Column("verification_token", String(200), nullable=False),
    Column("active", Boolean, nullable=False),
    #: Bumped on every change so every process restarts its loop with the new settings.
    Column("version", Integer, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

#: Runtime state of each destination's delivery, kept apart from its settings so the
#: delivery loop's frequent writes never contend with an admin's edit.
destination_status = Table(
    "destination_status",
    metadata,
    Column(
        "destination_id",
        String(36),
        ForeignKey("destinations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("cursor", BigInteger, nullable=False),
    Column("delivered_total", BigInteger, nullable=False, default=0),
    Column("state", String(20), nullable=False),
    Column("last_success_at_ms", BigInteger, nullable=True),
    Column("last_error_at_ms", BigInteger, nullable=True),
    Column("last_error_status", Integer, nullable=True),
    Column("last_error_message", Text, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("next_retry_at_ms", BigInteger, nullable=True),
    #: When an admin last asked for a retry now (or a test send succeeded): the delivering
    #: process wakes the loop when this is newer than what the loop has seen.
    Column("retry_requested_at_ms", BigInteger, nullable=True),
    #: The breaker: dead letters in a row with nothing accepted between them, and since when
    #: the stream is held (wall-clock ms); kept across restarts.
    Column("dead_letters_in_a_row", Integer, nullable=False, server_default="0"),
    Column("held_since_ms", BigInteger, nullable=True),
    #: Requests sent and not answered yet, and when the oldest was sent (wall-clock ms), as
    #: the delivering process last wrote them (with each commit, and when one turns slow).
    Column("in_flight", Integer, nullable=False, server_default="0"),
    Column("oldest_in_flight_ms", BigInteger, nullable=True),
    #: Events retention's hard maximum removed before the destination had them: how many in
    #: all, and the range and time of the latest such removal.
    Column("lost_to_retention", BigInteger, nullable=False, server_default="0"),
    Column("lost_from_seq", BigInteger, nullable=True),
    Column("lost_to_seq", BigInteger, nullable=True),
    Column("lost_at_ms", BigInteger, nullable=True),
)

#: Events delivered per destination and minute: the rate over the last minute, and the
#: history the admin panel charts, with the lag sampled once a minute by the delivery
#: supervisor (NULL for a minute without a sample). Kept for `MINUTES_KEPT_HOURS`.
delivery_minutes = Table(
    "delivery_minutes",
    metadata,
    Column(
        "destination_id",
        String(36),
        ForeignKey("destinations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    #: The minute's start, in wall-clock ms.
    Column("minute_ms", BigInteger, primary_key=True),
    Column("events", BigInteger, nullable=False),
    #: Events the destination still owed, and the age of the oldest of them, when sampled.
    Column("lag_events", BigInteger, nullable=True),
    Column("lag_ms", BigInteger, nullable=True),
)

#: Events a destination refused on their own, again and again: set aside so the stream
#: goes on, kept (with a copy of the event) until re-sent or discarded.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("destination_id", String(36), ForeignKey("destinations.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("failed_at_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("error", Text, nullable=False),
    Index("ix_dead_letters_destination", "destination_id", "id"),
    # Ids are never reused (SQLite would otherwise hand out a removed newest id again).
    sqlite_autoincrement=True,
)

#: A capped history of delivery attempts per destination.
delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("destination_id", String(36), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("http_status", Integer, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("replay", Boolean, nullable=False),
    Index("ix_delivery_attempts_destination", "destination_id", "id"),
)

#: Re-sending a range of the log to one destination, apart from its live cursor.
replays = Table(
    "replays",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("destination_id", String(36), ForeignKey("destinations.id", ondelete="CASCADE"), nullable=False),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=False),
    Column("cursor", BigInteger, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("state", String(20), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("finished_at_ms", BigInteger, nullable=True),
    Index("ix_replays_destination", "destination_id", "state"),
)
