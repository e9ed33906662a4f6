"""Times are stored as integer milliseconds since the epoch (exact, and the same everywhere)."""

import time


def now_ms() -> int:
    return int(time.time() * 1000)
