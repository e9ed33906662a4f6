"""Test helpers: the service as a real process, and receivers on loopback that speak each
destination's protocol as documented (status codes and error bodies included)."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "action": "document.create",
        "actor": {
            "type": "user",
            "user": {"id": 146, "email": "flapjack@example.com", "name": "Flapjack Toasty"},
        },
        "context": {
            "ip_address": "39.139.42.243",
            "user_agent": "Mozilla/5.0",
            "session_id": "ixVo6maPbcgd1vvoj93teT",
            "site": {"id": 42, "name": "Grist Labs", "domain": "gristlabs"},
        },
        "timestamp": "2024-11-13T06:00:51.518Z",
        "details": {"document": {"id": "4cq1mNTkQmEF5KsUVGiy6H", "name": "Untitled document"}},
    }
    event.update(overrides)
    return event


def in_ns(namespace: str, **overrides: Any) -> dict[str, Any]:
    """An event in a namespace of its own, so a test's destinations see only its events."""
    return make_event(entity={"type": "project", "id": 7, "path": namespace}, **overrides)


# -- the service ------------------------------------------------------------------------


@dataclass
class Service:
    data_dir: Path
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    admin_token: str = ""
    ingest_token: str = ""
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITRELAY_")}
        env.update(
            {
                "AUDITRELAY_DATA_DIR": str(self.data_dir),
                "AUDITRELAY_DATABASE_URL": self.database_url,
                "AUDITRELAY_PORT": str(self.port),
                "AUDITRELAY_ALLOW_PRIVATE_DESTINATIONS": "true",
                "AUDITRELAY_RETRY_INITIAL_SECONDS": "0.1",
                "AUDITRELAY_RETRY_MAX_SECONDS": "1",
                "AUDITRELAY_UNAUTHORIZED_RETRY_SECONDS": "0.5",
                "AUDITRELAY_CONNECT_TIMEOUT_SECONDS": "1",
                "AUDITRELAY_REQUEST_TIMEOUT_SECONDS": "2",
                "AUDITRELAY_RESYNC_SECONDS": "0.5",
                "AUDITRELAY_SQLITE_SYNCHRONOUS": "NORMAL",
                # Several processes, as `serve` runs by default on a multi-core machine.
                "AUDITRELAY_WORKERS": "2",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"service-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "auditrelay", "serve"], env=self.env(), stdout=log, stderr=log, cwd=ROOT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}: {self.log()}")
            try:
                if httpx.get(self.base_url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"service did not become ready: {self.log()}")
        self.admin_token = (self.data_dir / "admin.token").read_text().strip()
        self.ingest_token = (self.data_dir / "ingest.token").read_text().strip()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self, whole: bool = False) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path else ""
        return text if whole else text[-5000:]

    # -- API shortcuts --

    def admin(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.admin_token}"}, timeout=15
        )

    def ingest(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.ingest_token}"}, timeout=15
        )

    def send(self, events: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
        with self.ingest() as client:
            response = client.post("/api/v1/events", json=events)
        assert response.status_code == 202, response.text
        result: dict[str, Any] = response.json()
        return result

    def add_destination(self, **settings: Any) -> dict[str, Any]:
        with self.admin() as client:
            response = client.post("/api/v1/destinations", json=settings)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    def destination(self, destination_id: str) -> dict[str, Any]:
        with self.admin() as client:
            response = client.get(f"/api/v1/destinations/{destination_id}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def delete_destination(self, destination_id: str) -> None:
        with self.admin() as client:
            client.delete(f"/api/v1/destinations/{destination_id}")


# -- receivers ----------------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Reply = tuple[int, dict[str, str], bytes]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A sender that stops reading a long answer (it keeps 64 KiB) or dies resets the
        # connection: expected, not worth a traceback in the test output.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Receiver:
    """An HTTP server on loopback recording every request.

    `script` replies are used first, one per request, then `respond()`. A reply of
    `"hang"` holds the connection open without answering until the receiver closes.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Reply | str] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # http.server sends headers and body in two writes: without this, Nagle's
            # algorithm and delayed ACKs cost ~40 ms per request, and tests crawl.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender died mid-request (kill -9): nothing was delivered
                received = Received(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver.lock:
                    reply = receiver.script.pop(0) if receiver.script else None
                if reply is None:
                    reply = receiver.respond(received)
                if reply == "hang":  # hold the connection, answer nothing, record nothing
                    receiver.closing.wait(30)
                    return
                assert not isinstance(reply, str)
                status, headers, payload = reply
                if 200 <= status < 300:
                    with receiver.lock:
                        receiver.requests.append(received)
                else:
                    with receiver.lock:
                        receiver.failed.append(received)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.failed: list[Received] = []
        self.server = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def respond(self, request: Received) -> Reply | str:
        return 200, {"Content-Type": "application/json"}, b'{"ok":true}'

    def events(self) -> list[dict[str, Any]]:
        """Every event accepted so far, in arrival order (decoded per the protocol)."""
        with self.lock:
            requests = list(self.requests)
        return [event for request in requests for event in self.decode(request)]

    def decode(self, request: Received) -> list[dict[str, Any]]:
        payload = json.loads(request.body)
        return payload if isinstance(payload, list) else [payload]

    def events_where(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in self.events() if predicate(e)]

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


class HecReceiver(Receiver):
    """Splunk HEC as documented: `Authorization: Splunk <token>`, concatenated JSON
    envelopes, answers `{"text": ..., "code": N}` with HEC's status codes."""

    def __init__(self, token: str = "hec-token-0001") -> None:
        self.token = token
        super().__init__()

    def respond(self, request: Received) -> Reply:
        auth = request.header("authorization")
        if not auth:
            return self._answer(401, "Token is required", 2)
        if not auth.startswith("Splunk "):
            return self._answer(401, "Invalid authorization", 3)
        if auth[len("Splunk ") :] != self.token:
            return self._answer(403, "Invalid token", 4)
        try:
            envelopes = split_concatenated_json(request.body)
        except ValueError:
            return self._answer(400, "Invalid data format", 6)
        if not envelopes:
            return self._answer(400, "No data", 5)
        for envelope in envelopes:
            if "event" not in envelope:
                return self._answer(400, "Event field is required", 12)
            if envelope["event"] in ("", None):
                return self._answer(400, "Event field cannot be blank", 13)
        return self._answer(200, "Success", 0)

    @staticmethod
    def _answer(status: int, text: str, code: int) -> Reply:
        return status, {"Content-Type": "application/json"}, json.dumps({"text": text, "code": code}).encode()

    def decode(self, request: Received) -> list[dict[str, Any]]:
        return split_concatenated_json(request.body)

    def events(self) -> list[dict[str, Any]]:
        return [envelope["event"] for envelope in self.envelopes()]

    def envelopes(self) -> list[dict[str, Any]]:
        with self.lock:
            requests = list(self.requests)
        return [e for request in requests for e in split_concatenated_json(request.body)]


class SumoReceiver(Receiver):
    """A Sumo Logic HTTP source: gzip (or plain) newline-delimited lines, 200 on success."""

    def decode(self, request: Received) -> list[dict[str, Any]]:
        body = request.body
        if request.header("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return [json.loads(line) for line in body.splitlines() if line.strip()]


def split_concatenated_json(body: bytes) -> list[dict[str, Any]]:
    decoder = json.JSONDecoder()
    text = body.decode()
    position, result = 0, []
    while position < len(text):
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            break
        value, position = decoder.raw_decode(text, position)
        result.append(value)
    return result


def children_of(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a service's worker processes)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie awaiting its parent counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
