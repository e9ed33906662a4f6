"""Receivers for the benchmarks.

* `CountingReceiver`: a raw asyncio HTTP/1.1 server (keep-alive, Content-Length bodies) run as
  its own process. It answers every POST with HEC's success body and, per request path,
  counts requests, bytes and the events of this run (found by their id prefix in any body
  format: one event, JSON array, NDJSON, concatenated HEC envelopes, or any of them
  gzipped as Sumo Logic gets them), which ids arrived (to prove completeness) and, when
  events carry `details.bench_sent`, the latency from that send time to the time the
  request was fully read. With a delay it answers each request that much after reading
  it, without holding up the others (a SIEM far away), and counts the most requests it
  held at once (the sender's window). `GET /__stats`, `/__ids?path=`, `/__latencies?path=`
  and `/__concurrency` report to the harness.
* `Nginx`: Debian's stock nginx on a loopback port answering HEC's success body after
  reading the whole body (a `proxy_pass` to an internal `return 200` server forces the
  read), logging `$msec $status $request_length` per request to count requests and bytes.

Run the counting receiver alone: `python bench/receivers.py PORT ID_PREFIX [DELAY_SECONDS]`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, quote, urlsplit

import httpx

HEC_SUCCESS = b'{"text":"Success","code":0}'
NGINX = "/usr/sbin/nginx"


# -- the counting receiver (server side, runs in its own process) -------------------------


@dataclass
class PathStats:
    requests: int = 0
    bytes: int = 0
    events: int = 0
    distinct: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    #: The first and last requests that carried events of this run (not the service's own
    #: audit events, such as a pause streamed before it took effect).
    first_event_at: float = 0.0
    last_event_at: float = 0.0
    seen: bytearray = field(default_factory=bytearray)
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "bytes": self.bytes,
            "events": self.events,
            "distinct": self.distinct,
            "duplicates": self.events - self.distinct,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "first_event_at": self.first_event_at,
            "last_event_at": self.last_event_at,
        }


class Counter:
    def __init__(self, id_prefix: str) -> None:
        self.id_pattern = re.compile(rb'"id":"' + re.escape(id_prefix.encode()) + rb'-([0-9a-f]{12})"')
        self.sent_pattern = re.compile(rb'"bench_sent":([0-9.eE+-]+)')
        self.paths: dict[str, PathStats] = {}
        #: POSTs read and not answered yet, and the most there ever were.
        self.pending = 0
        self.most_pending = 0
        #: The POSTs held unanswered, every 0.1 s while any were (the sender's window over time).
        self.pending_samples: list[tuple[float, int]] = []
        self.connections: set[asyncio.Transport] = set()

    def record(self, path: str, body: bytes, at: float, wire_bytes: int | None = None) -> None:
        """Count one request; `wire_bytes` is its size as sent when `body` was decompressed."""
        stats = self.paths.get(path)
        if stats is None:
            stats = self.paths[path] = PathStats(first_at=at)
        stats.requests += 1
        stats.bytes += len(body) if wire_bytes is None else wire_bytes
        stats.last_at = at
        seen = stats.seen
        matches = self.id_pattern.findall(body)
        if matches:
            stats.first_event_at = stats.first_event_at or at
            stats.last_event_at = at
        for match in matches:
            index = int(match, 16)
            if index >= len(seen):
                seen.extend(bytes(max(index + 1 - len(seen), len(seen))))
            stats.events += 1
            if not seen[index]:
                seen[index] = 1
                stats.distinct += 1
        sent = self.sent_pattern.findall(body)
        if sent:
            stats.latencies_ms.extend((at - float(s)) * 1000.0 for s in sent)

    def report(self, target: str) -> Any:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/__stats":
            return {path: stats.summary() for path, stats in self.paths.items()}
        if parts.path == "/__concurrency":
            return {"now": self.pending, "most": self.most_pending, "samples": self.pending_samples}
        stats = self.paths.get(query.get("path", ""), PathStats())
        if parts.path == "/__ids":
            return [i for i, flag in enumerate(stats.seen) if flag]
        if parts.path == "/__latencies":
            return stats.latencies_ms
        return None


class CountingProtocol(asyncio.Protocol):
    def __init__(self, counter: Counter, delay: float = 0.0) -> None:
        self.counter = counter
        self.delay = delay
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.counter.connections.add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.counter.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self._one_request():
            pass

    def _one_request(self) -> bool:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(self.buffer) < end + 4 + length:
            return False
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        assert self.transport is not None
        close = headers.get("connection", "").lower() == "close"
        if method == "GET" and target.startswith("/__"):
            self._answer(json.dumps(self.counter.report(target)).encode(), close)
        else:
            at = time.time()
            if headers.get("content-encoding", "").lower() == "gzip":
                self.counter.record(target, gzip.decompress(body), at, wire_bytes=len(body))
            else:
                self.counter.record(target, body, at)
            self._answer_later(close)
        return not close

    def _answer_later(self, close: bool) -> None:
        """Answer a POST after the delay; the loop goes on reading the other connections
        meanwhile, so concurrent requests each wait the delay in parallel."""
        counter = self.counter
        counter.pending += 1
        counter.most_pending = max(counter.most_pending, counter.pending)

        def answer() -> None:
            counter.pending -= 1
            self._answer(HEC_SUCCESS, close)

        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, answer)
        else:
            answer()

    def _answer(self, payload: bytes, close: bool) -> None:
        assert self.transport is not None
        if self.transport.is_closing():  # the sender gave up (or died) meanwhile
            return
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(payload), payload)
        )
        if close:
            self.transport.close()


async def serve_counting(port: int, id_prefix: str, delay: float = 0.0) -> None:
    counter = Counter(id_prefix)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: CountingProtocol(counter, delay), "127.0.0.1", port, backlog=1024
    )
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    sampler = loop.create_task(sample_pending(counter)) if delay else None
    # When it began to listen: a sender that was refused until now may connect from then on.
    print(f"ready {time.time():.6f}", flush=True)
    async with server:
        await stop.wait()
        # Stop reading before the final report, so nothing arrives after it is taken: a
        # request read and not yet answered is simply never answered (the sender re-sends it).
        server.close()
        for transport in list(counter.connections):
            transport.abort()
    if sampler is not None:
        sampler.cancel()
    final = {
        "stats": counter.report("/__stats"),
        "ids": {path: counter.report(f"/__ids?path={quote(path)}") for path in counter.paths},
    }
    print(json.dumps(final), flush=True)


async def sample_pending(counter: Counter, interval: float = 0.1) -> None:
    """Note the requests held unanswered every `interval` (idle stretches left out)."""
    while True:
        await asyncio.sleep(interval)
        if counter.pending or counter.paths:
            counter.pending_samples.append((round(time.time(), 2), counter.pending))


def main() -> None:
    port, id_prefix = int(sys.argv[1]), sys.argv[2]
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    try:
        import uvloop

        uvloop.run(serve_counting(port, id_prefix, delay))
    except ImportError:
        asyncio.run(serve_counting(port, id_prefix, delay))


# -- client side handles used by the harness ---------------------------------------------


class CountingReceiver:
    """The counting receiver as a child process, and the harness's view of it: answering
    every POST `delay` seconds after reading it (0: at once). `ready_at` is when it began to
    listen (wall clock)."""

    def __init__(self, port: int, id_prefix: str, delay: float = 0.0) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(port), id_prefix, str(delay)], stdout=subprocess.PIPE
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline().split()
        if not ready or ready[0] != b"ready":
            raise RuntimeError("the counting receiver did not start")
        self.ready_at = float(ready[1])
        self.client = httpx.Client(base_url=self.url, timeout=60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = self.client.get("/__stats").json()
        return result

    def ids(self, path: str) -> list[int]:
        result: list[int] = self.client.get("/__ids", params={"path": path}).json()
        return result

    def latencies(self, path: str) -> list[float]:
        result: list[float] = self.client.get("/__latencies", params={"path": path}).json()
        return result

    def most_concurrent(self) -> int:
        """The most POSTs it held unanswered at once (all paths together)."""
        result: int = self.client.get("/__concurrency").json()["most"]
        return result

    def concurrency_samples(self) -> list[tuple[float, int]]:
        """(time, POSTs held unanswered) every 0.1 s, when answering with a delay."""
        result: list[tuple[float, int]] = [
            tuple(s) for s in self.client.get("/__concurrency").json()["samples"]
        ]
        return result

    def close(self) -> dict[str, Any]:
        """Stop it; what it received, taken once it stopped reading: `stats` and `ids` by path."""
        self.client.close()
        self.process.terminate()
        assert self.process.stdout is not None
        final, _ = self.process.communicate(timeout=30)
        lines = final.splitlines()
        result: dict[str, Any] = json.loads(lines[-1]) if lines else {"stats": {}, "ids": {}}
        return result


class Intermittent:
    """A counting receiver on a fixed port that goes down (its process ends, so the port
    refuses connections: the harder case for a sender, no answer at all) and comes back as a
    new process on the same port. What each incarnation received at `path` is kept."""

    def __init__(self, port: int, id_prefix: str, path: str) -> None:
        self.port, self.id_prefix, self.path = port, id_prefix, path
        self.current: CountingReceiver | None = None
        self.seen: set[int] = set()
        self.events = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> float:
        """Start listening again; when it began to (wall clock)."""
        assert self.current is None, "already up"
        self.current = CountingReceiver(self.port, self.id_prefix)
        return self.current.ready_at

    def down(self) -> None:
        """End this incarnation, and keep what it received (taken once it stopped reading)."""
        assert self.current is not None, "already down"
        final = self.current.close()
        self.current = None
        self.seen.update(final["ids"].get(self.path, []))
        self.events += final["stats"].get(self.path, {}).get("events", 0)

    def first_at(self) -> float | None:
        """When this incarnation read its first request at `path`, if it has."""
        assert self.current is not None
        stats = self.current.stats().get(self.path)
        return stats["first_at"] if stats else None

    def close(self) -> None:
        if self.current is not None:
            self.down()


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  log_format bench '$msec $status $request_length $request_method';
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  upstream answer {{ server 127.0.0.1:{inner}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port} backlog=1024;
    client_max_body_size 64m;
    client_body_buffer_size 16m;
    location / {{
      access_log {dir}/access.log bench buffer=256k flush=100ms;
      # Proxying makes nginx read the whole body first; the body itself is not passed on.
      proxy_pass http://answer;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
  }}
  server {{
    listen 127.0.0.1:{inner};
    location / {{ default_type application/json; return 200 '{success}'; }}
  }}
}}
"""


def ensure_nginx() -> None:
    if Path(NGINX).exists():
        return
    print("nginx is missing: apt-get install -y nginx", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "nginx"], check=True, stdout=subprocess.DEVNULL)


class Nginx:
    """nginx answering HEC success on `port`, counting requests and bytes in its access log."""

    def __init__(self, port: int, inner_port: int) -> None:
        ensure_nginx()
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="bench-nginx-", dir="/tmp"))
        self.dir.chmod(0o755)  # the worker runs as an unprivileged user
        conf = NGINX_CONF.format(dir=self.dir, port=port, inner=inner_port, success=HEC_SUCCESS.decode())
        (self.dir / "nginx.conf").write_text(conf)
        error_log = str(self.dir / "error.log")
        self.process = subprocess.Popen(
            [NGINX, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir), "-e", error_log]
        )
        from service import wait_until  # not at the top: the counting receiver's process needs none of it

        process = self.process

        def answering() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited with {process.returncode}: {self.error_log()}")
            try:
                httpx.get(self.url + "/__ping", timeout=1)
            except httpx.HTTPError:
                return False
            return True

        try:
            wait_until(answering, timeout=10, interval=0.05, what="nginx to answer")
        except AssertionError:
            raise RuntimeError(f"nginx did not start: {self.error_log()}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def stats(self, wait: float = 0.3) -> dict[str, Any]:
        """POST requests, their bytes, statuses and the last request's time."""
        time.sleep(wait)  # the access log is flushed every 100 ms
        requests, total, last_at = 0, 0, 0.0
        statuses: dict[str, int] = {}
        with open(self.dir / "access.log") as log:
            for line in log:
                at, status, length, method = line.split()
                if method != "POST":
                    continue
                statuses[status] = statuses.get(status, 0) + 1
                requests += 1
                total += int(length)
                last_at = max(last_at, float(at))
        return {"requests": requests, "bytes": total, "statuses": statuses, "last_at": last_at}

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
