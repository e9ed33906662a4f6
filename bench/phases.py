"""The peer scenario's work split in two: `count` events ingested (batches of 500 from 4
client threads) while the one `splunk_hec` destination is paused, then drained to nginx once
resumed. For each phase: events/s, CPU-µs per event of the service's processes (and of each
one), and on PostgreSQL the CPU of the server's own processes, which the peer scenario does
not count.

    .venv/bin/python bench/phases.py [--backend sqlite|postgresql] [--count 200000]

Which worker takes the client's 4 connections is the kernel's choice (`SO_REUSEPORT`):
the per-process figures show it.
"""

from __future__ import annotations

import argparse
import glob
import os
import time

from scenarios import HEC_PATH, HEC_TOKEN, Context, arrived, receiver, service_on_fresh_store
from service import process_tree, thread_cpu_seconds, tree_cpu_seconds
from workload import batch_bodies, ingest, new_run_prefix


def postgres_cpu_seconds() -> float:
    """User + system time of every PostgreSQL process on this machine (the local server)."""
    total = 0
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as stat:
                text = stat.read()
        except OSError:
            continue
        if text[text.index("(") + 1 : text.rindex(")")].startswith("postgres"):
            fields = text[text.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--count", type=int, default=200_000)
    args = parser.parse_args()
    count = args.count
    prefix = new_run_prefix()
    bodies = list(batch_bodies(prefix, count, 500))
    extra: dict[str, object] = {}
    with (
        receiver("nginx", prefix) as server,
        service_on_fresh_store(Context(backend=args.backend, quick=False), extra) as service,
    ):
        destination = service.add_destination(name="hec", kind="splunk_hec", url=server.url, token=HEC_TOKEN)
        service.set_paused(destination["id"], True)
        pids = process_tree(service.pid)

        def split(pid: int, before: dict[int, tuple[float, float]]) -> str:
            main, others = thread_cpu_seconds(pid)
            return f"{main - before[pid][0]:.2f} + {others - before[pid][1]:.2f} s"

        def phase(name: str, run: object) -> None:
            per_process = {pid: thread_cpu_seconds(pid) for pid in pids}
            cpu, server_cpu, started = tree_cpu_seconds(service.pid), postgres_cpu_seconds(), time.monotonic()
            assert callable(run)
            done = run()
            seconds = time.monotonic() - started
            cpu = tree_cpu_seconds(service.pid) - cpu
            line = (
                f"{name}: {count / seconds:8,.0f} events/s, service {cpu / count * 1e6:5.1f} CPU-µs/event "
                f"(per process, event loop + other threads: {', '.join(split(p, per_process) for p in pids)})"
            )
            if args.backend == "postgresql":
                line += (
                    f", PostgreSQL {(postgres_cpu_seconds() - server_cpu) / count * 1e6:5.1f} CPU-µs/event"
                )
            print(line + ("" if done else " — NOT COMPLETE"), flush=True)

        def store() -> bool:
            report = ingest(service.base_url, service.ingest_token, bodies, 4, time.monotonic() + 300)
            return report.events == count and not report.failures

        def drain() -> bool:
            service.set_paused(destination["id"], False)
            return service.wait_drained(destination["id"], timeout=300)

        phase("ingest (paused)", store)
        phase("drain          ", drain)
        print(f"receiver: {arrived(server, HEC_PATH)['requests']} requests", flush=True)


if __name__ == "__main__":
    main()
