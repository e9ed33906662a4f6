"""When to try again after a failed delivery."""

from __future__ import annotations

import random

from auditrelay.destinations import Outcome

#: A destination may ask for a long pause with Retry-After; we honour it up to this bound.
MAX_RETRY_AFTER_SECONDS = 3600.0


def retry_delay(
    outcome: Outcome,
    failures: int,
    retry_after: float | None,
    initial: float,
    cap: float,
    unauthorized_floor: float,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with jitter, from `initial` doubling to `cap`.

    Half the delay is fixed and half random ("equal jitter"): a fleet of destinations that
    failed together does not retry in lock-step, and no retry comes sooner than half the
    schedule. A destination's `Retry-After` lengthens the wait, never shortens it; wrong
    credentials retry no faster than `unauthorized_floor`, since they rarely fix
    themselves in seconds.
    """
    rng = rng or random.Random()
    base = min(cap, initial * (2 ** min(max(failures - 1, 0), 32)))
    delay = base / 2 + rng.uniform(0, base / 2)
    if retry_after is not None:
        # The destination's wish is a minimum: `Retry-After: 0` must not become a hot loop.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    if outcome is Outcome.UNAUTHORIZED:
        delay = max(delay, unauthorized_floor)
    return delay
