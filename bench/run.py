"""Benchmarks of auditrelay (issue 5): `bench/run.py SCENARIO [--backend ...] [--quick]`.

Scenarios: ingest, e2e-batched, e2e-per-event, latency, fan-out, backlog (issue 5);
slow-receiver, outage, kills, large-backlog (issue 13: delivery under strain); or all. Each
starts the service as a real process on a fresh store (SQLite in a temp dir, or a new
PostgreSQL database dropped afterwards). Every result is saved as
bench/results/<timestamp>-<scenario>-<backend>.json; a Markdown table ends the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scenarios import SCENARIOS, Context, Result
from service import PG_ADMIN_URL, ROOT

RESULTS = Path(__file__).resolve().parent / "results"
FLOORS = {
    "ingest": "≥ 100,000 ev/s (issue 17)",
    "e2e-batched": "≥ 30,000 ev/s",
    "e2e-per-event": "≥ 10,000 ev/s (issue 17)",
    "latency": "p50 ≤ 20 ms, p99 ≤ 10 ms (issue 17)",
    "fan-out": "lag flat, 0 loss",
    "backlog": "drain ≥ 250,000 ev/s, peak ≤ 150 MB (issue 17)",
    "slow-receiver": "per-event ≥ 1,000 ev/s, HEC ≥ 30,000 ev/s",
    "outage": "back → delivery ≤ 30 s; Retry now → delivery ≤ 1 s",
    "kills": "0 lost; duplicates/kill ≤ window",
    "large-backlog": "peak < 400 MB",
    "peer": "≥ 1.0x syslog-ng (PG 0.8x), ≤ 15 CPU-µs/ev",
    "idle": "≤ 80 MB",
}


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(info.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


def postgres_reachable() -> bool:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def save(result: Result, ctx: Context, info: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{result['scenario']}-{result['backend']}.json"
    record = {
        "recorded_at": stamp,
        "command": " ".join(["bench/run.py", *sys.argv[1:]]),
        "commit": commit(),
        "service_src": str(ROOT / "src"),  # what the service ran (bench/service.py puts it first)
        "machine": info,
        "service_env": ctx.service_env or "defaults (AUDITRELAY_SQLITE_SYNCHRONOUS=FULL)",
        "result": result,
    }
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def notes(r: Result) -> str:
    if "error" in r:
        return "error: " + r["error"].splitlines()[-1][:80]
    parts = []
    if r.get("receiver"):
        parts.append(f"receiver {r['receiver']}")
    if r["scenario"] == "latency":
        parts.append(f"http batch_format {r['batch_format']}")
    if r["scenario"] == "ingest":
        parts.append(f"client CPU {r['client_cpu_s']} s")
    if r["scenario"] == "fan-out":
        parts.append(f"max lag {r['max_lag']}, lost {r['lost']}, lag flat {'yes' if r['lag_flat'] else 'no'}")
        parts.append(f"caught up {r['drain_after_stop_s']} s after the last POST")
        if not r["drained"]:
            parts.append("NOT caught up within the bound: missing ids may still be in flight")
    if r["scenario"] == "backlog":
        parts.append(f"stored at {r['ingest_events_per_s']:,} ev/s first; drain rate shown")
    if r["scenario"] in ("e2e-batched", "e2e-per-event"):
        parts.append(f"ingest alone {r['ingest_events_per_s']:,} ev/s")
    parts += strain_notes(r)
    return "; ".join(parts)


def strain_notes(r: Result) -> list[str]:
    """The figures of the issue 13 scenarios that the table's columns do not hold."""
    parts = []
    if r["scenario"] == "slow-receiver":
        for name in ("http", "hec"):
            run = r[name]
            parts.append(
                f"{name}: {run['events_per_s']:,} ev/s, {run['cpu_us_per_event']} CPU-µs/ev, "
                f"most concurrent {run['most_concurrent']}"
            )
    if r["scenario"] == "outage":
        parts.append(f"worst back → first delivery {r['worst_recovery_s']} s of {r['recoveries_s']}")
        parts.append(f"Retry now → first delivery {r['retry_to_first_s']} s; lost {r['lost']}")
    if r["scenario"] == "kills":
        for name, t in r["destinations"].items():
            parts.append(
                f"{name}: lost {t['lost']}, dup {t['duplicates']} ({t['duplicates_per_kill']}/kill "
                f"≤ {t['bound_per_kill']:,})"
            )
        parts.append(f"{r['kills']} kills at {r['rate']} ev/s, seed {r['seed']}")
    if r["scenario"] == "peer":
        ours, peer = r["auditrelay"], r["syslog_ng"]
        parts.append(
            f"syslog-ng {peer['events_per_s']:,} ev/s at {peer['cpu_us_per_event']} CPU-µs/ev in "
            f"{peer['peak_pss_mb']} MB; auditrelay {ours['cpu_us_per_event']} CPU-µs/ev; "
            f"ratio {r['ratio']}x, CPU {r['cpu_ratio']}x"
        )
    if r["scenario"] == "idle":
        parts.append(f"{r['processes']} processes, {r['pss_now_mb']} MB PSS at the end")
    if r["scenario"] == "large-backlog":
        parts.append(f"{r['drain_mb_per_s']} MB/s; most in flight {r['most_in_flight_in_status']}")
    return parts


def table(results: list[Result]) -> str:
    head = (
        "| scenario | backend | events | seconds | events/s | p50 ms | p95 ms | p99 ms "
        "| peak MB (PSS; RSS sum) | complete | floor | notes |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in results:
        lat = r.get("latency_ms") or {}
        floor = FLOORS[r["scenario"]] + (" ✅" if r.get("floor_met") else " ❌")
        complete = {True: "yes", False: "NO"}.get(r.get("complete"), "?")  # type: ignore[arg-type]
        cells = [
            r["scenario"] + (" (quick)" if r.get("quick") else ""),
            r["backend"],
            f"{r.get('events', 0):,}",
            f"{r.get('seconds', 0):.2f}",
            "-" if r.get("events_per_s", 0) is None else f"{r.get('events_per_s', 0):,}",
            *(f"{lat[k]:.1f}" if k in lat else "-" for k in ("p50", "p95", "p99")),
            f"{r.get('peak_rss_mb', '-')}; {r.get('rss_hwm_sum_mb', '-')}",
            complete,
            floor,
            notes(r),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smaller counts and shorter runs")
    parser.add_argument(
        "--receiver",
        choices=["nginx", "asyncio"],
        default="nginx",
        help="receiver of e2e-batched, e2e-per-event and backlog (asyncio checks every id)",
    )
    parser.add_argument(
        "--latency-format",
        choices=["json_array", "ndjson", "none"],
        default="json_array",
        help="batch_format of the latency scenario's http destination (none: one request per event)",
    )
    parser.add_argument("--concurrency", type=int, default=6, help="concurrent ingest requests")
    parser.add_argument(
        "--outage-seconds", type=float, help="how long the outage scenario's receiver is down (300; quick 40)"
    )
    parser.add_argument("--runs", type=int, help="outages in a row of the outage scenario (5; quick 2)")
    parser.add_argument("--seed", type=int, help="of the kill moments of the kills scenario (random)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="service setting")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = parser.parse_args()

    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    if "postgresql" in backends and not postgres_reachable():
        print(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: skipping it", file=sys.stderr)
        backends.remove("postgresql")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    service_env = dict(item.split("=", 1) for item in args.env)
    info = machine()
    results: list[Result] = []
    for name in names:
        for backend in backends:
            ctx = Context(
                backend,
                args.quick,
                args.receiver,
                args.concurrency,
                args.latency_format,
                service_env,
                args.outage_seconds,
                args.runs,
                args.seed,
            )
            print(
                f"== {name} on {backend}{' (quick)' if args.quick else ''} ...", file=sys.stderr, flush=True
            )
            started = time.monotonic()
            try:
                result = SCENARIOS[name](ctx)
            except Exception:
                result = {
                    "scenario": name,
                    "backend": backend,
                    "quick": args.quick,
                    "error": traceback.format_exc(),
                }
                print(result["error"], file=sys.stderr)
            result["wall_seconds"] = round(time.monotonic() - started, 1)
            results.append(result)
            print(table([result]).splitlines()[-1], file=sys.stderr, flush=True)
            if not args.no_save:
                print(f"   saved {save(result, ctx, info).relative_to(ROOT)}", file=sys.stderr)
    print()
    print(table(results))
    print()
    print(
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory_gb']} GB RAM, "
        f"Linux {info['kernel']}, Python {info['python']}; commit {commit()}; "
        f"service settings: {service_env or 'defaults (SQLite synchronous=FULL)'}."
    )


if __name__ == "__main__":
    main()
