"""What an admin may send: destinations to create or change, replays, resends; validated
here with clear messages, before any service code runs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from auditrelay.destinations import KINDS, MASKED, check_header_text, kind_names
from auditrelay.model import MAX_DEAD_LETTER_ID, MAX_STORED_INT
from auditrelay.security import GENERATE, check_certificates, check_private_key, signing_key

MAX_HEADERS = 20
#: RFC 9110 `token`: the characters a header field name may use.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Set by auditrelay itself or by the HTTP layer; an admin overriding them would break delivery.
RESERVED_HEADERS = {
    "content-type",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "content-encoding",
    "user-agent",
    "x-auditrelay-streaming-token",
    # Standard Webhooks: set on every signed request.
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
}
EVENT_TYPE = re.compile(r"\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?")
MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+([ \t]*;[ \t]*[\w.+-]+=[\w.+\"-]+)*", re.ASCII)
VERIFICATION_TOKEN = re.compile(r"[\x21-\x7e]{16,200}")


#: Header names that carry credentials: secret unless the request says otherwise.
CREDENTIAL_HEADER = re.compile(
    r"(?i)(authorization|proxy-authorization|cookie|.*-(token|key|secret|password))"
)


class HeaderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    #: May be omitted for a secret header that already exists: its stored value is kept.
    value: str | None = Field(default=None, max_length=4096)
    #: Absent: secret when the name carries credentials (`CREDENTIAL_HEADER`).
    secret: bool = False

    @model_validator(mode="before")
    @classmethod
    def _credentials_are_secret(cls, data: Any) -> Any:
        named = isinstance(data, dict) and "secret" not in data and isinstance(data.get("name"), str)
        if named and CREDENTIAL_HEADER.fullmatch(data["name"]):
            return {**data, "secret": True}
        return data

    @field_validator("name")
    @classmethod
    def _token(cls, name: str) -> str:
        if not HEADER_NAME.fullmatch(name):
            raise ValueError("a header name must be an RFC 9110 token (letters, digits, !#$%&'*+-.^_`|~)")
        if name.lower() in RESERVED_HEADERS:
            hint = " (use the content_type setting)" if name.lower() == "content-type" else ""
            raise ValueError(f"header {name!r} is set by auditrelay and cannot be overridden{hint}")
        return name

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None) -> str | None:
        return check_header_text(value, "a header value")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_events: int | None = Field(default=None, ge=1, le=10_000)
    max_bytes: int | None = Field(default=None, ge=1024, le=10_000_000)
    linger_ms: int | None = Field(default=None, ge=0, le=10_000)


class DeliveryIn(BaseModel):
    """How requests go out; absent fields keep their current (or default) values."""

    model_config = ConfigDict(extra="forbid")
    #: One request at a time, in log order (lower throughput to a distant destination).
    ordered: bool | None = None
    #: The most requests in flight at once; the adaptive window stays at or below it.
    max_in_flight: int | None = Field(default=None, ge=1, le=500)


#: A CA bundle may be a whole public store (Mozilla's is about 220 KB); a client's own PEM is small.
MAX_CA_BUNDLE = 512 * 1024
MAX_PEM = 64 * 1024


class TlsIn(BaseModel):
    """A destination's TLS settings; absent fields keep their current (or default) values,
    and `null` puts one back to its default."""

    model_config = ConfigDict(extra="forbid")
    #: PEM certificates of the CAs to trust, instead of the system's store.
    ca_bundle: str | None = Field(default=None, max_length=MAX_CA_BUNDLE)
    #: For mutual TLS: the client's PEM certificate (then its chain), and its key.
    client_certificate: str | None = Field(default=None, max_length=MAX_PEM)
    #: Write-only; a PATCH that leaves it out keeps the stored key.
    client_key: str | None = Field(default=None, max_length=MAX_PEM)
    min_version: Literal["1.2", "1.3"] | None = None
    #: Check the server's certificate and name; off only when set to false explicitly (a
    #: JSON `false`: not "no", 0 or "false").
    verify: StrictBool | None = None

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: str | None) -> str | None:
        return None if value is None else check_certificates(value, "the CA bundle")

    @field_validator("client_certificate")
    @classmethod
    def _client_certificate(cls, value: str | None) -> str | None:
        return None if value is None else check_certificates(value, "the client certificate")

    @field_validator("client_key")
    @classmethod
    def _client_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if MASKED.search(value):
            raise ValueError(
                "looks like a masked secret ('********'); send the real key, or omit it to keep it"
            )
        return check_private_key(value)


def _check_signing_secret(value: str | None) -> str | None:
    """`generate`, or a `whsec_` secret of 24 to 64 bytes (checked whole)."""
    if value is None or value == GENERATE:
        return value
    if MASKED.search(value):
        raise ValueError(
            "looks like a masked secret ('********'); send the real value, or omit it to keep it"
        )
    signing_key(value)
    return value


def _check_previous_signing_secret(value: str | None) -> str | None:
    if value == GENERATE:
        raise ValueError("is the secret being replaced: give it (a 'whsec_' secret), or null to drop it")
    return _check_signing_secret(value)


def _check_headers(headers: list[HeaderIn] | None) -> list[HeaderIn] | None:
    if headers is None:
        return None
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} custom headers are allowed, got {len(headers)}")
    seen: set[str] = set()
    for header in headers:
        if header.name.lower() in seen:
            raise ValueError(f"header {header.name!r} is given twice")
        seen.add(header.name.lower())
    return headers


def _check_event_types(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if not EVENT_TYPE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an event type: use 'document.create' or a prefix 'document.*'"
            )
    return values


def _check_namespaces(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    cleaned = []
    for value in values:
        stripped = value.strip("/")
        if not stripped or any(ch.isspace() for ch in stripped):
            raise ValueError(f"{value!r} is not a namespace: use an entity path prefix such as 'acme/web'")
        cleaned.append(stripped)
    return cleaned


def _check_kind(value: str | None) -> str | None:
    if value is not None and value not in KINDS:
        raise ValueError(f"unknown kind {value!r}; the kinds are {', '.join(kind_names())}")
    return value


def _check_url_syntax(value: str | None) -> str | None:
    """A URL that does not even parse (`https://[::1`, a port past 65535) is the url's 422
    here, before anything renders or diffs it; where it may point is the URL guard's part."""
    if value is not None:
        try:
            _ = urlsplit(value.strip()).port  # the port is parsed only when asked for
        except ValueError as exc:
            raise ValueError(f"is not a valid URL: {exc}") from None
    return value


def _check_content_type(value: str | None) -> str | None:
    if value is not None and not MEDIA_TYPE.fullmatch(value):
        raise ValueError("must be a media type such as 'application/json'")
    return value


class _DestinationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headers: list[HeaderIn] | None = None
    event_types: list[str] | None = Field(default=None, max_length=100)
    namespaces: list[str] | None = Field(default=None, max_length=100)
    content_type: str | None = Field(default=None, max_length=200)
    #: Standard Webhooks signing: a `whsec_` secret, or `generate` (shown once, in the answer).
    signing_secret: str | None = Field(default=None, max_length=200)
    #: The secret still signing during a rotation (see `services.signing`).
    signing_secret_previous: str | None = Field(default=None, max_length=200)
    tls: TlsIn | None = None

    _headers = field_validator("headers")(_check_headers)
    _signing_secret = field_validator("signing_secret")(_check_signing_secret)
    _signing_secret_previous = field_validator("signing_secret_previous")(_check_previous_signing_secret)
    _event_types = field_validator("event_types")(_check_event_types)
    _namespaces = field_validator("namespaces")(_check_namespaces)
    _content_type = field_validator("content_type")(_check_content_type)


class DestinationCreate(_DestinationFields):
    name: str = Field(min_length=1, max_length=200)
    #: A registered kind's name (`destinations.KINDS`).
    kind: str
    url: str = Field(min_length=1, max_length=2048)
    token: str | None = Field(default=None, min_length=1, max_length=2048)
    verification_token: str | None = None
    active: bool = True
    org: str | None = Field(default=None, min_length=1, max_length=200)
    options: dict[str, object] = Field(default_factory=dict)
    batch: BatchIn | None = None
    delivery: DeliveryIn | None = None

    _kind = field_validator("kind")(_check_kind)
    _url_syntax = field_validator("url")(_check_url_syntax)

    @field_validator("verification_token")
    @classmethod
    def _verification_token(cls, value: str | None) -> str | None:
        if value is not None and not VERIFICATION_TOKEN.fullmatch(value):
            raise ValueError("must be 16 to 200 printable ASCII characters without spaces")
        return value

    @field_validator("token")
    @classmethod
    def _token_text(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return check_header_text(value, "the token")

    @field_validator("url")
    @classmethod
    def _url_not_masked(cls, value: str | None) -> str | None:
        if value is not None and MASKED.search(value):
            raise ValueError("looks like a masked URL ('********'); send the real URL, or omit it to keep it")
        return value


class DestinationPatch(_DestinationFields):
    """Every field optional; absent means unchanged. `verification_token` never changes."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: str | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    token: str | None = Field(default=None, min_length=1, max_length=2048)
    #: Accepted only when it equals the current one (a client sending back what it read).
    verification_token: str | None = None
    active: bool | None = None
    options: dict[str, object] | None = None
    batch: BatchIn | None = None
    delivery: DeliveryIn | None = None

    _kind = field_validator("kind")(_check_kind)
    _token_text = field_validator("token")(DestinationCreate._token_text.__func__)  # type: ignore[attr-defined]
    _url_not_masked = field_validator("url")(DestinationCreate._url_not_masked.__func__)  # type: ignore[attr-defined]
    _url_syntax = field_validator("url")(_check_url_syntax)


#: Dead letters re-sent by one call at most (each is one request).
MAX_RESEND = 100


class ReplayRequest(BaseModel):
    """A range of the log, by sequence numbers or by the time events were stored."""

    model_config = ConfigDict(extra="forbid")
    from_seq: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    to_seq: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    from_time: datetime | None = None
    to_time: datetime | None = None

    @model_validator(mode="after")
    def _one_kind_of_range(self) -> ReplayRequest:
        by_seq = self.from_seq is not None or self.to_seq is not None
        by_time = self.from_time is not None or self.to_time is not None
        if by_seq == by_time:
            raise ValueError(
                "give a range either by sequence (from_seq, to_seq) or by time (from_time, to_time)"
            )
        for moment in (self.from_time, self.to_time):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("times need a UTC offset, e.g. 2024-11-13T06:00:00Z")
        return self


class ResendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: Dead letters to re-send; the oldest ones (up to 100) when absent.
    ids: list[Annotated[int, Field(ge=1, le=MAX_DEAD_LETTER_ID)]] | None = Field(
        default=None, max_length=MAX_RESEND
    )
