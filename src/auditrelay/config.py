"""Settings from the environment, validated once at start-up and passed down.

No other module reads the environment: the one `Settings` object built here is handed to
the store, the API and the delivery supervisor.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDITRELAY_", extra="ignore")

    data_dir: Path = Path("./var")
    #: `sqlite:///path` or `postgresql://user@host/db`; empty means SQLite in `data_dir`.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8700, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Processes serving the API on one port; 0 means one per CPU core, at most 4. They all
    #: take events; the one holding the delivery lock also delivers (see auditrelay.cluster).
    workers: int = Field(default=0, ge=0, le=64)

    #: Refuse destination URLs that resolve to loopback/private/link-local/metadata
    #: addresses unless explicitly allowed (tests and lab setups turn this on).
    allow_private_destinations: bool = False

    max_events_per_request: int = Field(default=1000, ge=1)
    max_request_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    #: One event, serialised as stored; what bounds the memory of every read of the log.
    max_event_bytes: int = Field(default=1024 * 1024, ge=1024)

    #: Key (urlsafe base64, 32 bytes) encrypting secrets at rest; generated into
    #: `data_dir/secret.key` on first start when not given.
    secret_key: str = ""

    #: SQLite `synchronous` pragma. FULL makes each accepted batch survive power loss,
    #: not only a process crash; NORMAL trades that for speed.
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"

    # Delivery tuning (per-destination settings override the batch ones).
    retry_initial_seconds: float = Field(default=1.0, gt=0)
    #: Backoff is capped here, so a destination that comes back after an outage of any
    #: length gets its events within about this long (or at once on "Retry now").
    retry_max_seconds: float = Field(default=30.0, gt=0)
    unauthorized_retry_seconds: float = Field(default=60.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    #: How often each process re-reads the destination list (changes made by other
    #: processes) and polls for events as a safety net behind the wake-ups.
    resync_seconds: float = Field(default=2.0, gt=0)
    #: How long a stopping delivery loop (pause, edit, shutdown) may take to finish the
    #: request in flight and commit its cursor before it is cancelled.
    stop_grace_seconds: float = Field(default=10.0, gt=0)
    #: A worker whose event loop has not answered the supervising process for this long
    #: (hung, or stopped) is killed and replaced.
    #: At least 3 s: the parent pings every second and reads the answers twice a second.
    worker_timeout_seconds: float = Field(default=30.0, ge=3)
    #: Events are kept this long, and longer while a destination still owes them...
    retention_days: float = Field(default=30.0, gt=0)
    #: ...but never longer than this, even for a paused or failing destination.
    retention_hard_max_days: float = Field(default=90.0, gt=0)
    retention_interval_seconds: float = Field(default=3600.0, gt=0)
    #: A single event refused (4xx other than 401/403/408/429) this many times in a row is
    #: set aside as a dead letter, so the stream goes on.
    rejections_before_dead_letter: int = Field(default=3, ge=1, le=100)
    #: After this many dead letters in a row with nothing accepted between them, a
    #: destination is more likely misconfigured than fed poison: its stream is held...
    dead_letters_before_hold: int = Field(default=5, ge=1, le=1000)
    #: ...and the hold ends after this long, when dead-lettering resumes.
    breaker_hold_seconds: float = Field(default=600.0, gt=0)
    #: A request unanswered for this long turns its destination `slow` (shown, and an audit
    #: event), long before it times out.
    slow_request_seconds: float = Field(default=5.0, gt=0)
    create_initial_tokens: bool = True
    #: The event loop: "asyncio" (the standard library's) or "uvloop" (faster). uvloop has
    #: closed an unrelated connection's descriptor after a failed outgoing connection
    #: (MagicStack/uvloop#740): seen here as admin requests dropped, and once a SQLite
    #: "disk I/O error", after TLS handshakes to a destination failed. Correctness first.
    event_loop: Literal["uvloop", "asyncio"] = "asyncio"
    #: A person's session lasts this long from sign-in (sign-out, locking or removing the
    #: person ends it sooner).
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    #: Session cookies carry `Secure`: browsers send them over HTTPS only (and to
    #: http://localhost). Turn off only to try the panel over plain HTTP on another host.
    cookie_secure: bool = True
    #: Where browsers reach the service (behind a proxy: its public URL); the single
    #: sign-on callback is built from it. Empty: http://HOST:PORT.
    public_url: str = ""
    #: Single sign-on with OpenID Connect: the provider's issuer URL turns it on; the
    #: client is registered there with the redirect URI PUBLIC_URL/api/v1/session/sso/callback.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_scopes: str = "openid email profile"
    #: The ID token's claim listing roles ("admin", "<org>:owner", "<org>:viewer"); when a
    #: token carries it, it decides the person's roles at each sign-in.
    oidc_roles_claim: str = "auditrelay_roles"

    @model_validator(mode="after")
    def _oidc_complete(self) -> Settings:
        if self.oidc_issuer and not (self.oidc_client_id and self.oidc_client_secret):
            raise ValueError("oidc_issuer needs oidc_client_id and oidc_client_secret too")
        return self

    @property
    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @model_validator(mode="after")
    def _hard_max_covers_retention(self) -> Settings:
        if self.retention_hard_max_days < self.retention_days:
            raise ValueError("retention_hard_max_days must be at least retention_days")
        return self

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("database_url must start with sqlite:// or postgresql://")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL, with the driver we ship named explicitly."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'auditrelay.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, min(os.cpu_count() or 1, 4))


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
