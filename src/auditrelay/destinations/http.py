"""`http` ("Other"): any endpoint taking JSON, in the native event format.

By default one event per request, as Grist sends it; optionally batches as a JSON array or
as NDJSON. The token, when set, is sent verbatim as the `Authorization` value.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from auditrelay.destinations.base import DestinationKind, OutgoingRequest, split_batch
from auditrelay.model import BatchSettings, Destination, StoredEvent


class HttpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    #: `none`: one event per request; `json_array`: `[e1,e2,...]`; `ndjson`: one event per line.
    batch_format: Literal["none", "json_array", "ndjson"] = "none"


class HttpKind(DestinationKind):
    name = "http"
    title = "Other (HTTP)"
    options_model: ClassVar[type[BaseModel]] = HttpOptions
    default_batch = BatchSettings(max_events=100, max_bytes=1_000_000, linger_ms=5)

    def one_event_per_request(self, destination: Destination) -> bool:
        return bool(destination.options.get("batch_format", "none") == "none")

    def requests(self, destination: Destination, batch: Sequence[StoredEvent]) -> Iterator[OutgoingRequest]:
        batch_format = destination.options.get("batch_format", "none")
        content_type = "application/x-ndjson" if batch_format == "ndjson" else "application/json"
        headers = self.base_headers(destination, content_type)
        if destination.token:
            headers["Authorization"] = destination.token
        if batch_format == "none":
            for event in batch:
                yield OutgoingRequest(destination.url, headers, event.body, (event,))
            return
        limits = destination.batch
        for run in split_batch(batch, limits.max_events, self.request_bytes(destination), overhead=1):
            if batch_format == "json_array":
                content = b"[" + b",".join(e.body for e in run) + b"]"
            else:
                content = b"\n".join(e.body for e in run) + b"\n"
            yield OutgoingRequest(destination.url, headers, content, run)
