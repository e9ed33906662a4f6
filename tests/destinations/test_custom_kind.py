"""Adding a destination kind is one class and one `register` call: a kind defined here, in
the test, is accepted by the API, validated with its own options, and streamed to end to end
by the real service (in this process, so that it sees the registration) over real sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import uvicorn
from pydantic import BaseModel, ConfigDict

from auditrelay.api import create_app
from auditrelay.cli import prepare
from auditrelay.config import Settings
from auditrelay.destinations import KINDS, DestinationKind, OutgoingRequest, register, split_batch
from auditrelay.model import BatchSettings, Destination, StoredEvent
from tests.support import Received, Receiver, free_port, make_event, wait_until


class LinesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = "audit"


class LinesKind(DestinationKind):
    """Plain-text lines `<prefix> <seq> <event JSON>`, several per request."""

    name = "test_lines"
    title = "Lines (test)"
    options_model: ClassVar[type[BaseModel]] = LinesOptions
    default_batch = BatchSettings(max_events=50, max_bytes=100_000, linger_ms=0)

    def requests(self, destination: Destination, batch: Sequence[StoredEvent]) -> Iterator[OutgoingRequest]:
        headers = self.base_headers(destination, "text/plain")
        prefix = destination.options["prefix"].encode()
        for run in split_batch(batch, destination.batch.max_events, self.request_bytes(destination)):
            content = b"".join(b"%s %d %s\n" % (prefix, e.seq, e.body) for e in run)
            yield OutgoingRequest(destination.url, headers, content, run)


class LinesReceiver(Receiver):
    def decode(self, request: Received) -> list[dict[str, object]]:
        import json

        return [
            {"line": line} | json.loads(line.split(" ", 2)[2]) for line in request.body.decode().splitlines()
        ]


@pytest.fixture
def service_in_process(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    register(LinesKind())
    settings = Settings(
        data_dir=tmp_path, port=free_port(), allow_private_destinations=True, workers=1, log_level="warning"
    )
    prepare(settings)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.port}"
    try:
        wait_until(lambda: server.started, timeout=20, what="the in-process service")
        admin = (tmp_path / "admin.token").read_text().strip()
        ingest = (tmp_path / "ingest.token").read_text().strip()
        yield base, admin, ingest
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        KINDS.pop(LinesKind.name, None)


def test_a_kind_defined_here_is_validated_and_streamed_to_end_to_end(
    service_in_process: tuple[str, str, str],
) -> None:
    base, admin, ingest = service_in_process
    receiver = LinesReceiver()
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as client:
            wrong = client.post(
                "/api/v1/destinations",
                json={"name": "lines", "kind": "test_lines", "url": receiver.url, "options": {"nope": 1}},
            )
            assert wrong.status_code == 422, wrong.text
            assert wrong.json()["errors"][0]["field"] == "options.nope"
            created = client.post(
                "/api/v1/destinations",
                json={
                    "name": "lines",
                    "kind": "test_lines",
                    "url": receiver.url,
                    "options": {"prefix": "seen"},
                },
            )
            assert created.status_code == 201, created.text
            assert created.json()["batch"] == {"max_events": 50, "max_bytes": 100_000, "linger_ms": 0}
        events = [make_event(action="custom.kind") for _ in range(3)]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ingest}"}, timeout=10) as client:
            assert client.post("/api/v1/events", json=events).status_code == 202
        wait_until(
            lambda: len(receiver.events_where(lambda e: e["action"] == "custom.kind")) == 3,
            what="the three events, as lines",
        )
        got = receiver.events_where(lambda e: e["action"] == "custom.kind")
        assert [e["id"] for e in got] == [e["id"] for e in events]
        assert all(str(e["line"]).startswith("seen ") for e in got)
        request = receiver.requests[-1]
        assert request.header("content-type") == "text/plain"
        assert request.header("x-auditrelay-streaming-token") == created.json()["verification_token"]
    finally:
        receiver.close()


def test_an_unknown_kind_is_refused_with_the_kinds_there_are(
    service_in_process: tuple[str, str, str],
) -> None:
    base, admin, _ = service_in_process
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=10) as client:
        answer = client.post(
            "/api/v1/destinations", json={"name": "x", "kind": "syslog", "url": "http://127.0.0.1:9/"}
        )
    assert answer.status_code == 422
    message = answer.json()["errors"][0]["message"]
    assert "unknown kind 'syslog'" in message and "splunk_hec" in message and "test_lines" in message
