"""Receivers on loopback that speak each destination's protocol as documented (status codes
and error bodies included), recording every request."""

from __future__ import annotations

import gzip
import http.server
import json
import select
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    #: For a request left hanging: when the sender gave up on it and closed the connection.
    given_up_at: float | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


Reply = tuple[int, dict[str, str], bytes]
#: A reply that holds the connection open without answering until the receiver closes.
HANG = "hang"


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

    What it answers, first match wins:

    1. `script`: one-shot replies, one per request, in order (`HANG` holds that request);
    2. `answer_with(status, headers, body)`: every following request gets that answer until
       changed (`answer_with(HANG)` holds them all); `answer_normally()` ends it;
    3. `respond(request)`: the protocol's own answer, which subclasses define.

    `delay(seconds)` sends every following answer that much later; `hold()` keeps every
    following request waiting, unanswered, until `release()`.

    `most_concurrent` is the most requests it was answering at once (the sender's window).
    Given an `ssl_context` (a server's), it speaks HTTPS.

    Recorded: `arrivals`, every request read in full, in arrival order, whatever its answer
    (a hanging or held one too); `requests`, those answered 2xx; `failed`, those answered
    otherwise. A hanging request is in `arrivals` only, with `given_up_at` set when the
    sender closes its connection. Closing the receiver drops hanging and held connections.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.failed: list[Received] = []
        self.arrivals: list[Received] = []
        self.script: list[Reply | str] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self._standing: Reply | str | None = None
        self._delay = 0.0
        self._concurrent = 0
        self.most_concurrent = 0
        self._open = threading.Event()
        self._open.set()
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
                    receiver._concurrent += 1
                    receiver.most_concurrent = max(receiver.most_concurrent, receiver._concurrent)
                try:
                    reply = receiver._reply_to(received, self.connection)
                finally:
                    with receiver.lock:
                        receiver._concurrent -= 1
                if reply is None:  # left hanging, or held until the receiver closed: no answer
                    self.close_connection = True
                    return
                status, headers, payload = reply
                with receiver.lock:
                    (receiver.requests if 200 <= status < 300 else receiver.failed).append(received)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.tls = ssl_context is not None
        if ssl_context is not None:
            # HTTPS: the handshake happens as each connection is accepted; one that fails
            # (an untrusted or missing client certificate, a version refused) is dropped.
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.server.server_address[1]}"

    # -- configuring the answers --

    def answer_with(
        self, status: int | str | None, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        """Answer every following request so (or hang, with `HANG`) until changed; `None`
        goes back to the protocol's own answer."""
        answer: Reply | str | None
        if status is None or status == HANG:
            answer = status
        elif isinstance(status, int):
            answer = (status, dict(headers or {}), body)
        else:
            raise ValueError(f"not an HTTP status: {status!r}")
        with self.lock:
            self._standing = answer

    def answer_normally(self) -> None:
        """Back to the protocol's own answer (`respond`)."""
        self.answer_with(None)

    def delay(self, seconds: float) -> None:
        """Send every following answer `seconds` after the request arrived (0: at once)."""
        with self.lock:
            self._delay = seconds

    def hold(self) -> None:
        """Keep every following request waiting, unanswered, until `release()`."""
        self._open.clear()

    def release(self) -> None:
        """Answer the held requests, and the following ones at once."""
        self._open.set()

    def respond(self, request: Received) -> Reply | str:
        """The protocol's own answer; subclasses speak their protocol here."""
        return 200, {"Content-Type": "application/json"}, b'{"ok":true}'

    def _reply_to(self, received: Received, connection: socket.socket) -> Reply | None:
        with self.lock:
            self.arrivals.append(received)
            reply = self.script.pop(0) if self.script else self._standing
            delay = self._delay
        if reply is None:
            reply = self.respond(received)
        while not self._open.wait(0.01):
            if self.closing.is_set():
                return None
        if reply == HANG:
            self._hang(received, connection)
            return None
        if delay and self.closing.wait(delay):
            return None
        assert not isinstance(reply, str), reply
        return reply

    def _hang(self, received: Received, connection: socket.socket) -> None:
        """Answer nothing until the receiver closes or the sender gives up (and note when)."""
        while not self.closing.is_set():
            readable, _, _ = select.select([connection], [], [], 0.05)
            if not readable:
                continue
            try:
                peeked = connection.recv(1, socket.MSG_PEEK)
            except OSError:
                peeked = b""
            if not peeked:
                received.given_up_at = time.time()
                return
            self.closing.wait(0.05)  # bytes of a next request: the sender has not given up

    # -- what arrived --

    def events(self) -> list[dict[str, Any]]:
        """Every event accepted so far, in arrival order (decoded per the protocol)."""
        with self.lock:
            requests = list(self.requests)
        return [event for request in requests for event in self.decode(request)]

    def arrived_events(self) -> list[dict[str, Any]]:
        """Every event that arrived so far, whatever the answer, in arrival order."""
        with self.lock:
            requests = list(self.arrivals)
        return [event for request in requests for event in self.decode(request)]

    def decode(self, request: Received) -> list[dict[str, Any]]:
        """One event, a JSON array, or NDJSON (by its Content-Type)."""
        if (request.header("content-type") or "").startswith("application/x-ndjson"):
            return [json.loads(line) for line in request.body.splitlines() if line.strip()]
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
