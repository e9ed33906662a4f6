"""What an admin may send to create or change a destination, validated with clear messages."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_HEADERS = 20
#: RFC 9110 `token`: the characters a header field name may use.
HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
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
}
#: What a header value may hold: visible ASCII, spaces and tabs (RFC 9110 field-vchar,
#: without obs-text, which receivers decode inconsistently).
HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
#: A masked secret as the API shows it; sent back, it must not replace the real one.
MASKED = re.compile(r"\*{8}")
EVENT_TYPE = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
MEDIA_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+(\s*;\s*[\w.+-]+=[\w.+\"-]+)*$")
VERIFICATION_TOKEN = re.compile(r"^[\x21-\x7e]{16,200}$")


class HeaderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    #: May be omitted for a secret header that already exists: its stored value is kept.
    value: str | None = Field(default=None, max_length=4096)
    secret: bool = False

    @field_validator("name")
    @classmethod
    def _token(cls, name: str) -> str:
        if not HEADER_NAME.match(name):
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


def check_header_text(value: str | None, what: str) -> str | None:
    """Refuse what cannot travel in an HTTP header: CR/LF (injection), NUL, non-ASCII."""
    if value is None:
        return None
    if any(ch in value for ch in "\r\n\x00"):
        raise ValueError(f"{what} must not contain CR, LF or NUL characters")
    if not HEADER_VALUE.match(value):
        raise ValueError(f"{what} must be printable ASCII (it travels in an HTTP header)")
    if MASKED.search(value):
        raise ValueError(
            f"{what} looks like a masked secret ('********'); send the real value, or omit it to keep it"
        )
    return value


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
        if not EVENT_TYPE.match(value):
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


def _check_content_type(value: str | None) -> str | None:
    if value is not None and not MEDIA_TYPE.match(value):
        raise ValueError("must be a media type such as 'application/json'")
    return value


class _DestinationFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    headers: list[HeaderIn] | None = None
    event_types: list[str] | None = Field(default=None, max_length=100)
    namespaces: list[str] | None = Field(default=None, max_length=100)
    content_type: str | None = Field(default=None, max_length=200)

    _headers = field_validator("headers")(_check_headers)
    _event_types = field_validator("event_types")(_check_event_types)
    _namespaces = field_validator("namespaces")(_check_namespaces)
    _content_type = field_validator("content_type")(_check_content_type)


class DestinationCreate(_DestinationFields):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["http", "splunk_hec", "sumo_logic"]
    url: str = Field(min_length=1, max_length=2048)
    token: str | None = Field(default=None, min_length=1, max_length=2048)
    verification_token: str | None = None
    active: bool = True
    org: str | None = Field(default=None, min_length=1, max_length=200)
    options: dict[str, object] = Field(default_factory=dict)
    batch: BatchIn | None = None

    @field_validator("verification_token")
    @classmethod
    def _verification_token(cls, value: str | None) -> str | None:
        if value is not None and not VERIFICATION_TOKEN.match(value):
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
    kind: Literal["http", "splunk_hec", "sumo_logic"] | None = None
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    token: str | None = Field(default=None, min_length=1, max_length=2048)
    #: Accepted only when it equals the current one (a client sending back what it read).
    verification_token: str | None = None
    active: bool | None = None
    options: dict[str, object] | None = None
    batch: BatchIn | None = None

    _token_text = field_validator("token")(DestinationCreate._token_text.__func__)  # type: ignore[attr-defined]
    _url_not_masked = field_validator("url")(DestinationCreate._url_not_masked.__func__)  # type: ignore[attr-defined]
