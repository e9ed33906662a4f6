"""How many requests a destination may have in flight: adaptive, as Vector's adaptive
request concurrency (ARC) decides it.

A SIEM tens of milliseconds away would get one request per round trip if we sent one at a
time; the window lets several be in flight, and learns how many the destination takes:

- it starts at one request and, while the round trips stay as short as they were (and the
  window was full, so there is evidence that more would help), doubles per round trip until
  the first sign of congestion ("slow start", as TCP does), then adds one per round trip;
- it shrinks by a tenth when the destination pushes back (429, 5xx, timeouts, connection
  errors) or when round trips grow beyond their usual spread;
- it never exceeds the destination's `max_in_flight`.

The rules are Vector's (`src/sinks/util/adaptive_concurrency/controller.rs`: an EWMA of
past round trips with its variance, decided once per averaged round trip), with two
differences. The spread that counts as "grown" is at least 15% of the mean: on loopback or a
LAN the variance of a receiver's latency is a fraction of a millisecond, and without a floor
the scheduling noise of a busy host reads as congestion. And the slow start: adding one per
round trip, a SIEM 50 ms away would need five seconds to reach the 100 requests in flight
it takes to get 2,000 events/s one event per request; doubling, it needs seven round trips.
After a fall-back (the destination failed), the slow start runs again up to half the limit
it had, then growth is one per round trip.

The window is pure: time is passed in (`now`), so its behaviour is unit-tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Vector's defaults, which its authors chose by simulation.
DECREASE_RATIO = 0.9
EWMA_ALPHA = 0.4
RTT_DEVIATION_SCALE = 2.5
#: Our addition: round trips up to this much above the mean always count as within the spread.
MIN_DEVIATION_RATIO = 0.15


@dataclass
class _Ewma:
    """An exponentially weighted moving mean and variance (Vector's `EwmaVar`)."""

    alpha: float
    mean: float = 0.0
    variance: float = 0.0
    started: bool = False

    def update(self, value: float) -> None:
        if not self.started:
            self.mean, self.variance, self.started = value, 0.0, True
            return
        difference = value - self.mean
        increment = self.alpha * difference
        self.mean += increment
        self.variance = (1 - self.alpha) * (self.variance + difference * increment)


class ConcurrencyWindow:
    """The number of requests one destination may have in flight, and the slots taken.

    `take` takes a slot (the loop sends only while the window is not `full`); `release`
    frees slots; `record` feeds the window each answer (its round trip, and whether it was
    back pressure).
    """

    def __init__(self, maximum: int, *, adaptive: bool = True, now: float = 0.0) -> None:
        if maximum < 1:
            raise ValueError("a window holds at least one request")
        self.maximum = maximum
        self.adaptive = adaptive and maximum > 1
        #: The current limit: one to start with when adaptive, else the maximum.
        self.limit = 1 if self.adaptive else maximum
        self.in_flight = 0
        self._past = _Ewma(EWMA_ALPHA)
        self._current_sum = 0.0
        self._current_count = 0
        self._next_update = now
        self._back_pressure = False
        self._reached_limit = False
        #: Doubling up to this limit (no congestion seen yet: the maximum).
        self._threshold = self.maximum

    @property
    def full(self) -> bool:
        return self.in_flight >= self.limit

    def take(self) -> None:
        self.in_flight += 1
        if self.in_flight >= self.limit:
            self._reached_limit = True

    def release(self, count: int = 1) -> None:
        self.in_flight = max(0, self.in_flight - count)

    def record(self, rtt: float | None, back_pressure: bool, now: float) -> None:
        """One answer: `rtt` seconds when the destination took the request (None otherwise)."""
        if back_pressure:
            self._back_pressure = True
        if rtt is not None:
            self._current_sum += rtt
            self._current_count += 1
        current = self._current_sum / self._current_count if self._current_count else None
        if not self._past.started:
            if current is not None:
                self._past.update(current)
                self._next_update = now + current
            elif back_pressure:
                self._shrink()
            return
        if now < self._next_update:
            return
        if self.adaptive:
            self._adjust(current)
        if current is not None:
            self._past.update(current)
        self._next_update = now + self._past.mean
        self._current_sum, self._current_count = 0.0, 0
        self._back_pressure = self._reached_limit = False

    def _adjust(self, current: float | None) -> None:
        mean = self._past.mean
        threshold = max(math.sqrt(self._past.variance) * RTT_DEVIATION_SCALE, mean * MIN_DEVIATION_RATIO)
        if (
            self.limit < self.maximum
            and self._reached_limit
            and not self._back_pressure
            and current is not None
            # Within a part in a million: an average of equal round trips may come out a
            # rounding error above the mean (Vector's tests round for the same reason).
            and current <= mean * (1 + 1e-6)
        ):
            grown = self.limit * 2 if self.limit < self._threshold else self.limit + 1
            self.limit = min(self.maximum, grown)
        elif self._back_pressure or (current is not None and current >= mean + threshold):
            self._shrink()

    def _shrink(self) -> None:
        if self.adaptive and self.limit > 1:
            self.limit = max(1, int(self.limit * DECREASE_RATIO))
        # Congestion seen: from now on, growth is one per round trip.
        self._threshold = min(self._threshold, self.limit)

    def fall_back(self) -> None:
        """The destination is failing: one request at a time until it recovers (then a slow
        start up to half the limit it had)."""
        if self.adaptive:
            self._threshold = max(1, self.limit // 2)
            self.limit = 1
