"""Times are stored as integer milliseconds since the epoch (exact, and the same everywhere)."""

import time


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_from_ms(ms: int | None) -> str | None:
    """RFC 3339 UTC with milliseconds, as the API shows every time."""
    if ms is None:
        return None
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
