"""`append_events` alone, without HTTP: what one append of a batch costs the service and the
database. Batches of ingest-shaped events (the template of workload.py, validated as ingest
does) go to a fresh store from `--writers` threads, each append its own transaction.

    .venv/bin/python bench/append.py [--backend postgresql|sqlite] [--writers 1] [--repeat 3]
                                     [--random-ids]

Prints events/s, the median append (checkout to commit), and CPU per batch: this process
(Python, SQLAlchemy, psycopg) and, on a local PostgreSQL, the backends serving it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
from service import fresh_store
from workload import event, new_run_prefix

from auditrelay.config import Settings
from auditrelay.events import ValidEvent, validate_events
from auditrelay.store import Database, append_events, upgrade_to_head


def make_batches(count: int, size: int, random_ids: bool = False) -> list[list[ValidEvent]]:
    prefix = new_run_prefix()

    def one(i: int) -> dict[str, object]:
        item: dict[str, object] = orjson.loads(event(prefix, i))
        if random_ids:  # as producers send them (uuid4): no longer in index order
            item["id"] = str(uuid.uuid4())
        return item

    return [
        validate_events([one(i) for i in range(start, start + size)])
        for start in range(0, count * size, size)
    ]


def backend_cpu_s(db: Database) -> float | None:
    """CPU seconds of the PostgreSQL backends serving this database (None if not local)."""
    with db.reading() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        total = 0.0
        try:
            for pid in pids:
                with open(f"/proc/{pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            return None
    return total


def run(backend: str, batches: list[list[ValidEvent]], writers: int) -> str:
    with fresh_store(backend) as url, tempfile.TemporaryDirectory() as data_dir:
        db = Database(
            Settings(database_url=url, data_dir=Path(data_dir), sqlite_synchronous="FULL"),
            pool_size=max(writers, 2),
        )
        try:
            upgrade_to_head(db)
            with db.writing() as conn:  # open a connection per writer before timing
                append_events(conn, batches[0], None)
            todo = batches[1:]
            lock = threading.Lock()
            seconds: list[float] = []

            def writer() -> None:
                while True:
                    with lock:
                        if not todo:
                            return
                        batch = todo.pop()
                    started = time.perf_counter()
                    with db.writing() as conn:
                        append_events(conn, batch, None)
                    seconds.append(time.perf_counter() - started)

            backend_before = backend_cpu_s(db) if db.is_postgresql else None
            cpu_before, started = time.process_time(), time.perf_counter()
            threads = [threading.Thread(target=writer) for _ in range(writers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
            backend_after = backend_cpu_s(db) if db.is_postgresql else None
        finally:
            db.dispose()
    appends = len(batches) - 1
    events = sum(len(b) for b in batches[1:])
    line = (
        f"{backend} writers={writers}: {events / wall:9,.0f} events/s, "
        f"append p50 {statistics.median(seconds) * 1000:5.1f} ms, "
        f"CPU per batch: this process {cpu / appends * 1000:4.1f} ms"
    )
    if backend_before is not None and backend_after is not None:
        # Backends that joined the pool during the run count in full: slightly high.
        line += f", PostgreSQL {(backend_after - backend_before) / appends * 1000:4.1f} ms"
    return line


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--writers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--random-ids", action="store_true", help="random UUIDs (the workload's ids are in sequence)"
    )
    args = parser.parse_args()
    batches = make_batches(args.batches + 1, args.batch_size, args.random_ids)
    for _ in range(args.repeat):
        print(run(args.backend, batches, args.writers), flush=True)


if __name__ == "__main__":
    main()
