"""Events and the clients that send them: a concurrent bulk client and a paced producer.

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


def event(prefix: str, i: int, sent_at: float | None = None) -> bytes:
    extra = b',"bench_sent":%.6f' % sent_at if sent_at is not None else b""
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
