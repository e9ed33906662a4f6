"""A destination as the delivery loop and the kinds see it: settings resolved, secrets open."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """A batch is flushed at `max_events` or `max_bytes`, or after `linger_ms`, whichever first."""

    max_events: int
    max_bytes: int
    linger_ms: int


@dataclass(frozen=True, slots=True)
class Destination:
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
    version: int = 1
    created_at_ms: int = 0
    updated_at_ms: int = 0

    @property
    def filtered(self) -> bool:
        return bool(self.event_types or self.namespaces)
