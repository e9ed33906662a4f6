"""`sumo_logic`: a Sumo Logic HTTP source.

The source URL embeds the collector's token, so the whole URL is a secret: encrypted at
rest and masked in every answer. Batches go as gzip-compressed NDJSON, at most about 1 MB
uncompressed per request as Sumo recommends. A 429 means Sumo dropped the data: retried.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from auditrelay.destinations.base import DestinationKind, OutgoingRequest, split_batch
from auditrelay.destinations.headers import check_header_text
from auditrelay.model import BatchSettings, Destination, StoredEvent


class SumoLogicOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str | None = Field(default=None, max_length=1024, description="X-Sumo-Category")
    source_name: str | None = Field(default=None, max_length=1024, description="X-Sumo-Name")
    source_host: str | None = Field(default=None, max_length=1024, description="X-Sumo-Host")
    fields: str | None = Field(default=None, max_length=4096, description="X-Sumo-Fields, e.g. 'env=prod'")

    @field_validator("category", "source_name", "source_host", "fields")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        return check_header_text(value, "this option (sent as an X-Sumo-* header)")


class SumoLogicKind(DestinationKind):
    name = "sumo_logic"
    title = "Sumo Logic"
    options_model: ClassVar[type[BaseModel]] = SumoLogicOptions
    url_is_secret = True
    token_allowed = False
    default_batch = BatchSettings(max_events=1000, max_bytes=1_000_000, linger_ms=5)
    #: Sumo Logic recommends at most 1 MB of uncompressed data per request.
    max_request_bytes = 1_000_000

    def check(self, destination: Destination) -> list[tuple[str, str]]:
        problems = super().check(destination)
        for header in destination.headers:
            if header.name.lower().startswith("x-sumo-"):
                problems.append(
                    ("headers", f"set {header.name} through options (category, source_name, ...)")
                )
        return problems

    def requests(self, destination: Destination, batch: Sequence[StoredEvent]) -> Iterator[OutgoingRequest]:
        headers = self.base_headers(destination, "application/x-ndjson")
        headers["Content-Encoding"] = "gzip"
        options = destination.options
        for option, header in (
            ("category", "X-Sumo-Category"),
            ("source_name", "X-Sumo-Name"),
            ("source_host", "X-Sumo-Host"),
            ("fields", "X-Sumo-Fields"),
        ):
            if options.get(option):
                headers[header] = options[option]
        limits = destination.batch
        for run in split_batch(batch, limits.max_events, self.request_bytes(destination), overhead=1):
            ndjson = b"\n".join(e.body for e in run) + b"\n"
            # Level 1: most of gzip's gain on JSON at a fraction of the CPU of the default.
            yield OutgoingRequest(destination.url, headers, gzip.compress(ndjson, compresslevel=1), run)
