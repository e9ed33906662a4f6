"""`read_after` alone on large events: what reading a backlog of events just under the 1 MiB
limit costs the delivering process. `--events` events (stored once) are read through in
steps of `--max-bytes`, as a delivery loop reads them, `--repeat` times.

    .venv/bin/python bench/read_large.py [--backend postgresql|sqlite] [--events 160] [--repeat 5]

Prints CPU-µs per event read (this process: the driver, the decoding, the copies) and the
process's RSS high-water mark once the events are stored and after the reads.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import orjson
from scenarios import LARGE_EVENT_BYTES
from service import fresh_store
from workload import event, new_run_prefix

from auditrelay.config import Settings
from auditrelay.events import validate_events
from auditrelay.store import Database, append_events, read_after, upgrade_to_head

MiB = 1024 * 1024


def hwm_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(backend: str, count: int, max_bytes: int, repeat: int) -> str:
    prefix = new_run_prefix()
    pad = LARGE_EVENT_BYTES - len(event(prefix, 0))
    with fresh_store(backend) as url, tempfile.TemporaryDirectory() as data_dir:
        db = Database(Settings(database_url=url, data_dir=Path(data_dir), sqlite_synchronous="NORMAL"))
        try:
            upgrade_to_head(db)
            for start in range(0, count, 4):
                batch = [orjson.loads(event(prefix, i, pad=pad)) for i in range(start, start + 4)]
                with db.writing() as conn:
                    append_events(conn, validate_events(batch), None)
            stored_hwm = hwm_mb()
            read = 0
            cpu = time.process_time()
            for _ in range(repeat):
                cursor = 0
                while True:
                    with db.reading() as conn:
                        found = read_after(conn, cursor, 1000, max_bytes)
                    if not found:
                        break
                    read += len(found)
                    cursor = found[-1].seq
            cpu = time.process_time() - cpu
        finally:
            db.dispose()
    return (
        f"{backend}: {read:,} events of {LARGE_EVENT_BYTES:,} bytes read {max_bytes // MiB} MiB at a time, "
        f"{cpu / read * 1e6:,.0f} CPU-µs an event; RSS high-water {stored_hwm:.0f} MB stored, "
        f"{hwm_mb():.0f} MB after the reads"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
    parser.add_argument("--events", type=int, default=160)
    parser.add_argument("--max-bytes", type=int, default=16 * MiB)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(run(args.backend, args.events, args.max_bytes, args.repeat), flush=True)


if __name__ == "__main__":
    main()
