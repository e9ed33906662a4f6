"""Events and the clients that send them: a concurrent bulk client, a paced producer, and a
steady producer that rides out a service being killed.

Event `i` of a run has the id `<run prefix>-<i as 12 hex digits>`, so a receiver can tell
which events of the run arrived without being told the ids. Its action and entity path
vary with `i` (see `action_and_path`) so that destinations can filter on them.
"""

from __future__ import annotations

import queue
import resource
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import httpx

VERBS = ("create", "update")
TEMPLATE = (
    b'{"id":"%s-%012x","action":"grp%d.%s","actor":{"type":"user","user":{"id":146,'
    b'"email":"flapjack@example.com","name":"Flapjack Toasty"}},"context":{"ip_address":'
    b'"39.139.42.243","user_agent":"Mozilla/5.0","session_id":"ixVo6maPbcgd1vvoj93teT"},'
    b'"timestamp":"2024-11-13T06:00:51.518Z","details":{"document":{"id":"4cq1mNTkQmEF5KsUVGiy6H",'
    b'"name":"Untitled document"}%s},"entity":{"type":"project","id":7,"path":"ns%d/proj%d"}}'
)


def new_run_prefix() -> str:
    """The first four groups of a UUID (version 4, RFC 4122 variant), random per run."""
    hex_ = secrets.token_hex(8)
    return f"{hex_[:8]}-{hex_[8:12]}-4{hex_[13:16]}-8{hex_[1:4]}"


def action_and_path(i: int) -> tuple[str, str]:
    """Action `grpG.VERB` and entity path `nsN/projP` of event `i`: G, N and VERB uniform."""
    return f"grp{i % 10}.{VERBS[(i // 100) % 2]}", f"ns{(i // 10) % 10}/proj{i % 7}"


def event(prefix: str, i: int, sent_at: float | None = None, pad: int = 0) -> bytes:
    """Event `i`; `sent_at` goes into `details.bench_sent`, `pad` bytes of padding into
    `details.pad` (for events of a given size)."""
    extra = b',"bench_sent":%.6f' % sent_at if sent_at is not None else b""
    if pad:
        extra += b',"pad":"' + b"x" * pad + b'"'
    return TEMPLATE % (
        prefix.encode(),
        i,
        i % 10,
        VERBS[(i // 100) % 2].encode(),
        extra,
        (i // 10) % 10,
        i % 7,
    )


def batch_body(prefix: str, start: int, stop: int, sent_at: float | None = None) -> bytes:
    return b"[" + b",".join(event(prefix, i, sent_at) for i in range(start, stop)) + b"]"


def batch_bodies(prefix: str, count: int, size: int) -> Iterator[bytes]:
    for start in range(0, count, size):
        yield batch_body(prefix, start, min(start + size, count))


def large_bodies(prefix: str, count: int, event_bytes: int, per_request: int) -> Iterator[bytes]:
    """`count` events of about `event_bytes` each, `per_request` to a body, generated as sent
    (a backlog of 1 MB events does not fit in the client's memory at once)."""
    pad = max(0, event_bytes - len(event(prefix, 0)))
    for start in range(0, count, per_request):
        stop = min(start + per_request, count)
        yield b"[" + b",".join(event(prefix, i, pad=pad) for i in range(start, stop)) + b"]"


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[-1], 2)}


@dataclass
class IngestReport:
    events: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    request_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0

    @property
    def seconds(self) -> float:
        return self.finished - self.started


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ingest(url: str, token: str, bodies: Iterable[bytes], concurrency: int, deadline: float) -> IngestReport:
    """POST every body (a JSON array) with `concurrency` threads, each on its own keep-alive
    connection, until done or `deadline` (monotonic). Counts events accepted with 202."""
    report = IngestReport()
    source = iter(bodies)
    lock = threading.Lock()

    def worker() -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
            while time.monotonic() < deadline:
                with lock:
                    body = next(source, None)
                if body is None:
                    return
                started = time.perf_counter()
                try:
                    response = client.post("/api/v1/events", content=body)
                except httpx.HTTPError as exc:
                    report.failures.append(repr(exc))
                    continue
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    report.requests += 1
                    report.request_ms.append(elapsed)
                    if response.status_code == 202:
                        report.events += int(response.json()["accepted"])
                    else:
                        report.failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    cpu = _cpu()
    report.started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.finished = time.time()
    report.client_cpu_s = _cpu() - cpu
    return report


def paced(url: str, token: str, prefix: str, rate: int, seconds: float, tick: float = 0.01) -> IngestReport:
    """Send `rate` events a second for `seconds`, every `tick`, each event stamped with its send
    time in `details.bench_sent`. Two senders share the work so one slow answer does not stall
    the schedule; events due while both are busy go in the next request."""
    report = IngestReport()
    due: queue.Queue[tuple[int, int] | None] = queue.Queue()
    lock = threading.Lock()

    def sender() -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            while (item := due.get()) is not None:
                ranges = [item]
                # Merge whatever else is already due into this request.
                while sum(b - a for a, b in ranges) <= 750:  # ranges hold <= 250: <= 1000 a request
                    try:
                        more = due.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        due.put(None)
                        break
                    ranges.append(more)
                count = sum(b - a for a, b in ranges)
                started = time.perf_counter()
                now = time.time()
                body = b"[" + b",".join(event(prefix, i, now) for a, b in ranges for i in range(a, b)) + b"]"
                try:
                    response = client.post("/api/v1/events", content=body)
                    ok = response.status_code == 202
                    problem = "" if ok else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, problem = False, repr(exc)
                with lock:
                    report.requests += 1
                    report.request_ms.append((time.perf_counter() - started) * 1000)
                    if ok:
                        report.events += count
                    else:
                        report.failures.append(problem)

    senders = [threading.Thread(target=sender, daemon=True) for _ in range(2)]
    for thread in senders:
        thread.start()
    cpu = _cpu()
    report.started = time.time()
    begin, sent = time.monotonic(), 0
    total = int(rate * seconds)
    while sent < total:
        target = min(total, int((time.monotonic() - begin) * rate))
        while target > sent:
            step = min(target, sent + 250)
            due.put((sent, step))
            sent = step
        time.sleep(tick)
    for _ in senders:
        due.put(None)
    for thread in senders:
        thread.join()
    report.finished = time.time()
    report.client_cpu_s = _cpu() - cpu
    return report


class Steady:
    """Events at `rate` a second, in order, from a thread, until `stop()`: each request
    carries the events due since the last one (at most `max_batch`). A request not answered
    202 (the service is down, or was killed while answering) is sent again, the same events
    with the same ids, until it is: the store takes an id once, so a retry of events that
    were in fact stored stores nothing twice. So events 0 .. `report.events` - 1 were all
    answered 202 and no later one was, except perhaps those of the last request, in flight
    when stopped (`unanswered_at_stop`)."""

    def __init__(self, url: str, token: str, prefix: str, rate: float, max_batch: int = 1000) -> None:
        self.url, self.token, self.prefix, self.rate, self.max_batch = url, token, prefix, rate, max_batch
        self.report = IngestReport()
        #: Requests sent again after no answer or an answer other than 202.
        self.retries = 0
        self.unanswered_at_stop = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Steady:
        self.report.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> IngestReport:
        self._halt.set()
        self._thread.join(30)
        self.report.finished = time.time()
        return self.report

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        begin, cpu = time.monotonic(), _cpu()
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            while not self._halt.is_set():
                sent = self.report.events
                due = min(int((time.monotonic() - begin) * self.rate), sent + self.max_batch)
                if due <= sent:
                    self._halt.wait(min(0.01, 1 / self.rate))
                    continue
                if not self._send(client, sent, due):
                    self.retries += 1
                    if self._halt.wait(0.05):
                        self.unanswered_at_stop = due - sent
        self.report.client_cpu_s = _cpu() - cpu

    def _send(self, client: httpx.Client, start: int, stop: int) -> bool:
        body = b"[" + b",".join(event(self.prefix, i) for i in range(start, stop)) + b"]"
        started = time.perf_counter()
        try:
            response = client.post("/api/v1/events", content=body)
        except httpx.HTTPError as exc:
            self._failed(repr(exc))
            return False
        self.report.requests += 1
        self.report.request_ms.append((time.perf_counter() - started) * 1000)
        if response.status_code != 202:
            self._failed(f"{response.status_code} {response.text[:200]}")
            return False
        self.report.events = stop
        return True

    def _failed(self, problem: str) -> None:
        if len(self.report.failures) < 20:  # the first few say enough
            self.report.failures.append(problem)
