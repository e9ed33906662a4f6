"""Ingest's parse and validation alone, without HTTP or the database: CPU-µs per event of
decoding a body of 500 ingest-shaped events (workload.py's template) and validating it, as
`POST /api/v1/events` does.

    .venv/bin/python bench/validate.py [--batches 200] [--repeat 3]

Runs against whichever `auditrelay` is imported, so `PYTHONPATH=<other tree>/src` measures
another commit with the same events. Each body is another one, as in a service: a loop
over one body, hot in the caches, measures less, and once flattered a change (splitting
arrays to skip the nesting walk) that this loop showed gained nothing.
"""

from __future__ import annotations

import argparse
import time

from workload import batch_body, new_run_prefix

from auditrelay import events


def one_pass(bodies: list[bytes]) -> float:
    """CPU seconds to parse and validate every body."""
    started = time.process_time()
    for body in bodies:
        items = events.parse_body(body, "application/json", 1000)
        events.validate_events(items, max_event_bytes=1 << 20)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prefix = new_run_prefix()
    bodies = [batch_body(prefix, n * 500, (n + 1) * 500) for n in range(args.batches)]
    one_pass(bodies[:5])  # warm: compiled patterns, first allocations
    for _ in range(args.repeat):
        seconds = one_pass(bodies)
        print(
            f"parse + validate: {seconds / (args.batches * 500) * 1e6:5.2f} CPU-µs per event "
            f"({events.__file__})",
            flush=True,
        )


if __name__ == "__main__":
    main()
