"""Receivers on loopback that speak each destination's protocol as documented (status codes
and error bodies included), recording every request."""

from __future__ import annotations

import gzip
import http.server
import json
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
