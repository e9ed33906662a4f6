"""The interface every destination kind implements, and what they share.

A kind knows how to render a batch of stored events into HTTP requests and how to read
the answer. It knows nothing of cursors, retries or scheduling: that is `delivery/`.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from auditrelay import __version__
from auditrelay.model import BatchSettings, Destination, StoredEvent
from auditrelay.security import new_message_id

STREAMING_TOKEN_HEADER = "X-Auditrelay-Streaming-Token"
USER_AGENT = f"auditrelay/{__version__}"


class Outcome(Enum):
    """How a destination answered one request: what the delivery policy decides on."""

    DELIVERED = "delivered"
    #: Try the same request again later (connection errors, timeouts, 408, 429, 5xx).
    RETRY = "retry"
    #: 401/403: the credentials are wrong; retry slowly, never drop.
    UNAUTHORIZED = "unauthorized"
    #: Another 4xx: the destination refuses this content.
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A classified answer: the outcome, the reason in words, and a `Retry-After` if given."""

    outcome: Outcome
    message: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    url: str
    headers: dict[str, str]
    content: bytes
    events: Sequence[StoredEvent]
    #: The request's `webhook-id` when it is signed: made when the request is rendered, so
    #: every retry of it carries the same one (the specification's idempotency key), while a
    #: request rendered anew (after a restart, a split, a replay) gets its own.
    message_id: str = field(default_factory=new_message_id)


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DestinationKind(ABC):
    """Everything the rest of the service needs to know about one kind of destination.

    The admin services read the declarations (name, title, options, token rules, default
    batch) to validate and show a destination; the delivery loop calls `read_limit`,
    `requests` and `verdict`. A kind is pure: it renders bytes and reads answers, and never
    touches the database, the network or the cursor.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    options_model: ClassVar[type[BaseModel]] = NoOptions
    #: The URL holds a credential (Sumo Logic): encrypted, and masked in every answer.
    url_is_secret: ClassVar[bool] = False
    token_required: ClassVar[bool] = False
    token_allowed: ClassVar[bool] = True
    default_batch: ClassVar[BatchSettings] = BatchSettings(max_events=500, max_bytes=1_000_000, linger_ms=5)
    #: A cap on the (uncompressed) bytes of one request, whatever the destination's batch says.
    max_request_bytes: ClassVar[int | None] = None

    def one_event_per_request(self, destination: Destination) -> bool:
        """True when every request carries a single event (no batching at all)."""
        return False

    def read_limit(self, destination: Destination) -> int:
        """How many events the loop reads from the log at a time for this destination.

        Per-event destinations commit their cursor every `max_events` requests; batching
        ones read enough to fill a request even when filters drop most events.
        """
        if self.one_event_per_request(destination):
            return destination.batch.max_events
        return max(destination.batch.max_events, 1000)

    def read_bytes(self, destination: Destination) -> int:
        """About how many bytes of events the loop reads at a time: a few requests' worth,
        so a backlog of large events is read in bounded steps."""
        return max(4 * self.request_bytes(destination), 8 * 1024 * 1024)

    def request_bytes(self, destination: Destination) -> int:
        """The byte budget of one request: the destination's batch, within the kind's cap."""
        limit = destination.batch.max_bytes
        return limit if self.max_request_bytes is None else min(limit, self.max_request_bytes)

    def check(self, destination: Destination) -> list[tuple[str, str]]:
        """Kind-specific settings problems as (field, message); empty when valid."""
        problems: list[tuple[str, str]] = []
        if self.token_required and not destination.token:
            problems.append(("token", f"is required for {self.name} destinations"))
        if not self.token_allowed and destination.token:
            problems.append(("token", f"{self.name} destinations take no token"))
        if destination.token or self.token_required:
            for header in destination.headers:
                if header.name.lower() == "authorization":
                    problems.append(("headers", "Authorization comes from the token; set the token instead"))
        return problems

    @abstractmethod
    def requests(self, destination: Destination, batch: Sequence[StoredEvent]) -> Iterator[OutgoingRequest]:
        """Render events (already filtered, in log order) into one or more requests, in order."""

    def verdict(self, status: int, headers: dict[str, str], body: bytes) -> Verdict:
        """Classify an HTTP answer. Only 2xx counts as delivered; redirects are not followed."""
        return classify_status(status, headers, body)

    def base_headers(self, destination: Destination, content_type: str) -> dict[str, str]:
        headers = {h.name: h.value for h in destination.headers}
        headers["User-Agent"] = USER_AGENT
        headers["Content-Type"] = destination.content_type or content_type
        headers[STREAMING_TOKEN_HEADER] = destination.verification_token
        return headers


def classify_status(status: int, headers: dict[str, str], body: bytes) -> Verdict:
    message = f"HTTP {status}" + (f": {_snippet(body)}" if body else "")
    if 200 <= status < 300:
        return Verdict(Outcome.DELIVERED, f"HTTP {status}")
    if status in (401, 403):
        return Verdict(Outcome.UNAUTHORIZED, message)
    if status in (408, 429) or status >= 500:
        return Verdict(Outcome.RETRY, message, parse_retry_after(headers.get("retry-after")))
    if 300 <= status < 400:
        location = headers.get("location", "")
        return Verdict(Outcome.RETRY, f"HTTP {status} redirect to {location!r} (redirects are not followed)")
    return Verdict(Outcome.REJECTED, message)


#: RFC 9110 delta-seconds: ASCII digits only (str.isdigit() also takes "²" and other scripts' digits).
_DELTA_SECONDS = re.compile(r"[0-9]+")
#: RFC 9110 HTTP-date: IMF-fixdate, and the obsolete RFC 850 and asctime forms recipients
#: must accept too; always GMT.
_HTTP_DATE_FORMATS = ("%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y")


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110
    section 10.2.3), read strictly; anything else is ignored (None), never an error."""
    if not value:
        return None
    value = value.strip(" \t")
    if _DELTA_SECONDS.fullmatch(value):
        # The policy bounds any wait; this keeps an absurd one finite.
        return min(float(value), 1e15)
    if not value.isascii():
        return None
    for form in _HTTP_DATE_FORMATS:
        try:
            when = datetime.strptime(" ".join(value.split()) if "%Y %H" in form else value, form)
        except ValueError:
            continue
        return max(0.0, when.replace(tzinfo=UTC).timestamp() - time.time())
    return None


def split_batch(
    events: Sequence[StoredEvent], max_events: int, max_bytes: int, overhead: int = 0
) -> Iterator[list[StoredEvent]]:
    """Cut events into runs within both limits; an event larger than max_bytes goes alone."""
    current: list[StoredEvent] = []
    size = 0
    for event in events:
        event_size = len(event.body) + overhead
        if current and (len(current) >= max_events or size + event_size > max_bytes):
            yield current
            current, size = [], 0
        current.append(event)
        size += event_size
    if current:
        yield current


def _snippet(body: bytes, limit: int = 300) -> str:
    text = body[:limit].decode("utf-8", "replace").strip()
    return text + ("..." if len(body) > limit else "")
