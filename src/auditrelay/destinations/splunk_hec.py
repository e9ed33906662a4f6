"""`splunk_hec`: Splunk HTTP Event Collector.

Events go as HEC envelopes `{"time","host","source","sourcetype","index"?,"event"}`,
several concatenated per request (no array, no commas, as the HEC protocol wants), with
`Authorization: Splunk <token>`. HEC answers `{"text": ..., "code": N}`; any code but 0
is a failure even under a 2xx status.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field

from auditrelay.destinations.base import (
    DestinationKind,
    Outcome,
    OutgoingRequest,
    Verdict,
    classify_status,
    parse_retry_after,
    split_batch,
)
from auditrelay.model import BatchSettings, Destination, StoredEvent

EVENT_ENDPOINT = "/services/collector/event"
DEFAULT_SOURCETYPE = "auditrelay:event"

#: HEC codes meaning the data itself is refused (bad format, missing event, bad index...).
BAD_DATA_CODES = {5, 6, 7, 12, 13}
#: Codes meaning the token is missing, disabled or invalid.
TOKEN_CODES = {1, 2, 3, 4}


class SplunkHecOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: str | None = Field(default=None, max_length=200)
    source: str = Field(default="auditrelay", max_length=200)
    sourcetype: str = Field(default=DEFAULT_SOURCETYPE, max_length=200)
    #: HEC's `host` field; the machine auditrelay runs on when not set.
    host: str | None = Field(default=None, max_length=200)


def hec_token(token: str) -> str:
    """The bare HEC token, whether the admin typed `Splunk <token>` (as Grist asks) or not."""
    token = token.strip()
    if token.lower() == "splunk":
        return ""
    if token[:7].lower() == "splunk ":
        token = token[7:].strip()
    return token


def event_url(url: str) -> str:
    """The URL as given, or the HEC event endpoint when the URL names no path."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return urlunsplit(parts._replace(path=EVENT_ENDPOINT))
    return url


class SplunkHecKind(DestinationKind):
    name = "splunk_hec"
    title = "Splunk (HEC)"
    options_model: ClassVar[type[BaseModel]] = SplunkHecOptions
    token_required = True
    default_batch = BatchSettings(max_events=1000, max_bytes=1_000_000, linger_ms=5)

    def check(self, destination: Destination) -> list[tuple[str, str]]:
        problems = super().check(destination)
        if destination.token is not None and not hec_token(destination.token):
            problems.append(("token", "is empty once the 'Splunk ' prefix is removed"))
        return problems

    def requests(self, destination: Destination, batch: Sequence[StoredEvent]) -> Iterator[OutgoingRequest]:
        options = destination.options
        headers = self.base_headers(destination, "application/json")
        headers["Authorization"] = "Splunk " + hec_token(destination.token or "")
        # Everything of the envelope but `time` and `event` is the same for every event:
        # build it once, then each event costs two concatenations around its stored bytes.
        fields = {
            "host": options.get("host") or socket.gethostname(),
            "source": options.get("source", "auditrelay"),
            "sourcetype": options.get("sourcetype", DEFAULT_SOURCETYPE),
        }
        if options.get("index"):
            fields["index"] = options["index"]
        middle = b"," + orjson.dumps(fields)[1:-1] + b',"event":'
        url = event_url(destination.url)
        limits = destination.batch
        budget = self.request_bytes(destination)
        for run in split_batch(batch, limits.max_events, budget, overhead=len(middle) + 30):
            content = b"".join([_envelope(e, middle) for e in run])
            yield OutgoingRequest(url, headers, content, run)

    def verdict(self, status: int, headers: dict[str, str], body: bytes) -> Verdict:
        code, text = _hec_answer(body)
        if code is None or code == 0:
            return classify_status(status, headers, body)
        message = f"HTTP {status}, HEC code {code}: {text}"
        if code in TOKEN_CODES:
            return Verdict(Outcome.UNAUTHORIZED, message)
        if code in BAD_DATA_CODES and status == 400:
            return Verdict(Outcome.REJECTED, message)
        return Verdict(Outcome.RETRY, message, parse_retry_after(headers.get("retry-after")))


def _envelope(event: StoredEvent, middle: bytes) -> bytes:
    """One event's envelope: its time in epoch seconds with milliseconds, exact (no float),
    as HEC's `time` wants it, the fixed fields, and `event`, its stored bytes."""
    millis = event.occurred_at_ms
    whole, fraction = divmod(abs(millis), 1000)
    sign = b"-" if millis < 0 else b""
    return b'{"time":%s%d.%03d%s%s}' % (sign, whole, fraction, middle, event.body)


def _hec_answer(body: bytes) -> tuple[int | None, str]:
    try:
        answer = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None, ""
    if isinstance(answer, dict) and isinstance(answer.get("code"), int):
        return answer["code"], str(answer.get("text", ""))
    return None, ""
