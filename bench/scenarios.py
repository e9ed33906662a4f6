"""The scenarios of issue 5. Each starts the service on a fresh store, is bounded in time and
in count, and returns one result row (plus details) for the table and the JSON record."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from receivers import CountingReceiver, Nginx
from service import Service, free_port, fresh_store
from workload import action_and_path, batch_bodies, ingest, new_run_prefix, paced, percentiles

HEC_PATH = "/services/collector/event"
HEC_TOKEN = "bench-hec-token"


@dataclass
class Context:
    backend: str
    quick: bool
    receiver: str = "nginx"  # for the throughput scenarios; "asyncio" checks every id
    concurrency: int = 6
    latency_format: str = "json_array"  # http batch_format of the latency scenario
    service_env: dict[str, str] = field(default_factory=dict)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full


Result = dict[str, Any]


@contextlib.contextmanager
def service_on_fresh_store(ctx: Context, result: Result) -> Iterator[Service]:
    """The service on an empty store; its memory and CPU go into `result` when it stops."""
    with fresh_store(ctx.backend) as database_url:
        service = Service(database_url, ctx.service_env).start()
        try:
            yield service
            result.update(service.memory_report())
        except BaseException:
            print(service.log())
            raise
        finally:
            service.stop()


@contextlib.contextmanager
def receiver(kind: str, prefix: str) -> Iterator[CountingReceiver | Nginx]:
    """nginx or the counting receiver; the counting one when nginx cannot be installed or started."""
    server: CountingReceiver | Nginx
    try:
        if kind != "nginx":
            raise LookupError
        server = Nginx(free_port(), free_port())
    except LookupError:
        server = CountingReceiver(free_port(), prefix)
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"nginx is not usable ({exc}): using the counting receiver instead", file=sys.stderr)
        server = CountingReceiver(free_port(), prefix)
    try:
        yield server
    finally:
        server.close()


def arrived(server: CountingReceiver | Nginx, path: str) -> dict[str, Any]:
    """What reached `path`: requests, bytes, last_at, and (counting receiver) events, distinct."""
    if isinstance(server, Nginx):
        return server.stats()
    return server.stats().get(path, {"requests": 0, "bytes": 0, "events": 0, "distinct": 0, "last_at": 0})


def row(name: str, ctx: Context, events: int, seconds: float, **extra: Any) -> Result:
    return {
        "scenario": name,
        "backend": ctx.backend,
        "quick": ctx.quick,
        "events": events,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds) if seconds > 0 else 0,
        "latency_ms": None,
        **extra,
    }


def ingest_report(report: Any) -> dict[str, Any]:
    return {
        "ingest_events": report.events,
        "ingest_seconds": round(report.seconds, 3),
        "ingest_events_per_s": round(report.events / report.seconds) if report.seconds else 0,
        "ingest_requests": report.requests,
        "ingest_failures": report.failures[:5],
        "ingest_request_ms": percentiles(report.request_ms),
        "client_cpu_s": round(report.client_cpu_s, 2),
    }


# -- scenarios ------------------------------------------------------------------------------


def scenario_ingest(ctx: Context) -> Result:
    """Batches of 500 from `concurrency` keep-alive connections; 202 means durable."""
    count = ctx.size(200_000, 50_000)
    prefix = new_run_prefix()
    bodies = list(batch_bodies(prefix, count, 500))  # built up front: the client is not the bottleneck
    extra: Result = {}
    with service_on_fresh_store(ctx, extra) as service:
        deadline = time.monotonic() + 300
        report = ingest(service.base_url, service.ingest_token, bodies, ctx.concurrency, deadline)
    result = row("ingest", ctx, report.events, report.seconds, **extra, **ingest_report(report))
    result["latency_ms"] = percentiles(report.request_ms)
    result["latency_of"] = "one POST of 500 events, sent to 202"
    result["complete"] = report.events == count and not report.failures
    result["floor_met"] = result["events_per_s"] >= 30_000
    return result


def _one_destination_throughput(
    name: str, ctx: Context, count: int, path: str, settings: dict[str, Any]
) -> Result:
    """Ingest `count` events with one destination; time from the first POST until the receiver
    took the last event."""
    prefix = new_run_prefix()
    bodies = list(batch_bodies(prefix, count, 500))
    extra: Result = {}
    with (
        receiver(ctx.receiver, prefix) as server,
        service_on_fresh_store(ctx, extra) as service,
    ):
        extra["receiver"] = "nginx" if isinstance(server, Nginx) else "asyncio"
        destination = service.add_destination(url=server.url + path, **settings)
        deadline = time.monotonic() + 300
        report = ingest(service.base_url, service.ingest_token, bodies, ctx.concurrency, deadline)
        drained = service.wait_drained(destination["id"], timeout=max(60, count / 1000))
        got = arrived(server, path or HEC_PATH)
        status = service.status(destination["id"])
    seconds = got["last_at"] - report.started
    result = row(name, ctx, count if drained else status["delivered_total"], seconds, **extra)
    result.update(ingest_report(report))
    result.update(
        drained=drained,
        delivered_total=status["delivered_total"],
        receiver_requests=got["requests"],
        receiver_bytes=got["bytes"],
    )
    if "distinct" in got:  # the counting receiver saw every id?
        result.update(receiver_events=got["events"], receiver_distinct=got["distinct"])
        result["complete"] = got["distinct"] == count
    else:
        result["complete"] = drained and report.events == count
    return result


def scenario_e2e_batched(ctx: Context) -> Result:
    count = ctx.size(200_000, 20_000)
    settings = {"name": "hec", "kind": "splunk_hec", "token": HEC_TOKEN}  # default batching
    result = _one_destination_throughput("e2e-batched", ctx, count, "", settings)
    result["floor_met"] = result["events_per_s"] >= 30_000
    return result


def scenario_e2e_per_event(ctx: Context) -> Result:
    count = ctx.size(30_000, 5_000)
    settings = {"name": "http", "kind": "http"}  # one event per request, the default
    result = _one_destination_throughput("e2e-per-event", ctx, count, "/e", settings)
    result["floor_met"] = result["events_per_s"] >= 3_000
    return result


def scenario_latency(ctx: Context) -> Result:
    """1,000 events/s to one http destination (JSON-array batches by default, `none` for one
    request per event); each event carries its send time, the receiver notes its arrival."""
    rate, seconds = 1000, 10 if ctx.quick else 60
    prefix = new_run_prefix()
    extra: Result = {"receiver": "asyncio", "batch_format": ctx.latency_format}
    with (
        receiver("asyncio", prefix) as server,
        service_on_fresh_store(ctx, extra) as service,
    ):
        destination = service.add_destination(
            name="latency",
            kind="http",
            url=server.url + "/latency",
            options={"batch_format": ctx.latency_format},
        )
        report = paced(service.base_url, service.ingest_token, prefix, rate, seconds)
        drained = service.wait_drained(destination["id"], timeout=60)
        assert isinstance(server, CountingReceiver)
        got = arrived(server, "/latency")
        latencies = server.latencies("/latency")
    result = row("latency", ctx, got["distinct"], report.seconds, **extra)
    result.update(ingest_report(report))
    result["latency_ms"] = percentiles(latencies)
    result["latency_of"] = "event POSTed to ingest -> request read by the receiver"
    result.update(drained=drained, receiver_events=got["events"], complete=got["distinct"] == rate * seconds)
    lat = result["latency_ms"] or {}
    result["floor_met"] = bool(lat) and lat["p50"] <= 20 and lat["p99"] <= 100
    return result


def fan_out_filters(i: int) -> dict[str, Any]:
    """Destination `i` of 100: each takes 1/10 of the events, by type, namespace or both kinds."""
    if i < 40:
        return {"event_types": [f"grp{i % 10}.*"]}
    if i < 80:
        return {"namespaces": [f"ns{i % 10}"]}
    return {"event_types": [f"grp{i % 10}.create", f"grp{(i + 1) % 10}.update"]}


def fan_out_matches(i: int, event_index: int) -> bool:
    action, path = action_and_path(event_index)
    filters = fan_out_filters(i)
    if "namespaces" in filters:
        return any(path == ns or path.startswith(ns + "/") for ns in filters["namespaces"])
    return any(
        action == t or (t.endswith(".*") and action.startswith(t[:-1])) for t in filters["event_types"]
    )


def sample_every(interval: float, probe: Callable[[], Any], stop: threading.Event) -> list[Any]:
    """Call `probe` every `interval` s (or as soon as the last call returns, if later) in a
    thread until `stop`; the samples, live."""
    samples: list[Any] = []

    def loop() -> None:
        start = time.monotonic()
        while not stop.wait(max(0.0, interval - (time.monotonic() - start) % interval)):
            with contextlib.suppress(Exception):
                samples.append(probe())

    threading.Thread(target=loop, daemon=True).start()
    return samples


def scenario_fan_out(ctx: Context) -> Result:
    """100 http destinations (JSON-array batches) with different filters, each fed 100 events/s."""
    destinations, rate, seconds = 100, 1000, 10 if ctx.quick else 60
    prefix = new_run_prefix()
    extra: Result = {"receiver": "asyncio", "destinations": destinations}
    with (
        receiver("asyncio", prefix) as server,
        service_on_fresh_store(ctx, extra) as service,
    ):
        assert isinstance(server, CountingReceiver)
        ids = [
            service.add_destination(
                name=f"fan-{i}",
                kind="http",
                url=f"{server.url}/d/{i}",
                options={"batch_format": "json_array"},
                **fan_out_filters(i),
            )["id"]
            for i in range(destinations)
        ]
        stop = threading.Event()
        begin = time.monotonic()

        def probe() -> tuple[float, int, int]:
            lags = [s["lag"] for s in service.statuses().values()]
            return round(time.monotonic() - begin, 2), max(lags), sum(lags)

        lag_samples = sample_every(1.0, probe, stop)
        report = paced(service.base_url, service.ingest_token, prefix, rate, seconds)
        stop.set()
        deadline = time.monotonic() + max(60, 2 * seconds)
        while not (drained := not any(s["lag"] for s in service.statuses().values())):
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        total_seconds = time.monotonic() - begin  # until every destination is caught up
        total = rate * seconds
        expected = [[k for k in range(total) if fan_out_matches(i, k)] for i in range(destinations)]
        lost = unexpected = 0
        for i in range(destinations):
            got = set(server.ids(f"/d/{i}"))
            lost += len(set(expected[i]) - got)
            unexpected += len(got - set(expected[i]))
        latencies = [x for i in range(destinations) for x in server.latencies(f"/d/{i}")]
        received = sum(s["events"] for s in server.stats().values())
    deliveries = sum(len(e) for e in expected)
    result = row("fan-out", ctx, deliveries, total_seconds, **extra)
    result.update(ingest_report(report))
    half = len(lag_samples) // 2
    first = max((s[1] for s in lag_samples[:half]), default=0)
    second = max((s[1] for s in lag_samples[half:]), default=0)
    result.update(
        latency_ms=percentiles(latencies),
        latency_of="event POSTed to ingest -> batch read by the receiver, all destinations",
        drained=drained,
        lost=lost,
        unexpected=unexpected,
        received_events=received,
        max_lag=max(first, second),
        max_lag_first_half=first,
        max_lag_second_half=second,
        lag_flat=second <= first + rate,
        drain_after_stop_s=round(total_seconds - report.seconds, 2),
        lag_samples=lag_samples,
        destination_ids=len(ids),
    )
    result["complete"] = lost == 0 and unexpected == 0
    result["floor_met"] = result["complete"] and result["lag_flat"]
    return result


def scenario_backlog(ctx: Context) -> Result:
    """Store the backlog while the (splunk_hec) destination is paused, then resume it and time the
    drain; peak RSS is watched in both phases."""
    count = ctx.size(1_000_000, 100_000)
    prefix = new_run_prefix()
    extra: Result = {}
    with (
        receiver(ctx.receiver, prefix) as server,
        service_on_fresh_store(ctx, extra) as service,
    ):
        extra["receiver"] = "nginx" if isinstance(server, Nginx) else "asyncio"
        destination = service.add_destination(
            name="backlog", kind="splunk_hec", url=server.url, token=HEC_TOKEN
        )
        service.set_paused(destination["id"], True)
        assert service.memory is not None
        service.memory.mark("store backlog")
        bodies = batch_bodies(prefix, count, 500)  # generated as sent: 1M events would not fit
        deadline = time.monotonic() + 900
        report = ingest(service.base_url, service.ingest_token, bodies, ctx.concurrency, deadline)
        lag = service.status(destination["id"])["lag"]
        service.memory.mark("drain")
        resumed = time.time()
        service.set_paused(destination["id"], False)
        drained = service.wait_drained(destination["id"], timeout=max(60, count / 2000), interval=0.2)
        got = arrived(server, HEC_PATH)
        status = service.status(destination["id"])
    seconds = got["last_at"] - resumed
    result = row("backlog", ctx, count if drained else status["delivered_total"], seconds, **extra)
    result.update(ingest_report(report))
    result.update(
        lag_before_resume=lag,
        drained=drained,
        delivered_total=status["delivered_total"],
        receiver_requests=got["requests"],
        receiver_bytes=got["bytes"],
    )
    if "distinct" in got:
        result.update(receiver_events=got["events"], receiver_distinct=got["distinct"])
        result["complete"] = got["distinct"] == count
    else:
        result["complete"] = drained and report.events == count
    result["floor_met"] = result["events_per_s"] >= 30_000 and result["peak_rss_mb"] <= 300
    return result


SCENARIOS: dict[str, Callable[[Context], Result]] = {
    "ingest": scenario_ingest,
    "e2e-batched": scenario_e2e_batched,
    "e2e-per-event": scenario_e2e_per_event,
    "latency": scenario_latency,
    "fan-out": scenario_fan_out,
    "backlog": scenario_backlog,
}
