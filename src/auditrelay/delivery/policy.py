"""What to do after an attempt: a pure function from the answer and the history to a decision.

The loop only carries decisions out (wait, split, set aside, move on); every rule lives here,
as in procrastinate's `retry.py`, so each can be tested without a network or a database:

- accepted (2xx): the request is done;
- refused (a 4xx other than 401/403/408/429) during a replay: recorded, and the replay moves
  on: a replay never dead-letters, and never counts toward the live stream's breaker;
- 401/403 of a batch, or of one event while requests sent after it were accepted: a
  refusal of the content (a WAF in front of the SIEM), handled as the other 4xx; a lone
  event refused with 401/403 while nothing else gets through is a credentials problem;
- refused, several events: split the request in two to find the refused ones;
- refused, one event, `rejections_before_dead_letter` times: set it aside as a dead letter;
- refused while the breaker holds (too many dead letters in a row): wait and retry, `held`;
- anything else: wait (exponential backoff with jitter, `Retry-After` as a floor, slower for
  401/403) and send the same request again, `failing` or `unauthorized`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

from auditrelay.config import Settings
from auditrelay.destinations import Outcome, Verdict
from auditrelay.model import BreakerState, DeliveryState

#: A destination may ask for a long pause with Retry-After; we honour it up to this bound.
MAX_RETRY_AFTER_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The thresholds of the policy, from the settings."""

    initial_seconds: float = 1.0
    max_seconds: float = 300.0
    unauthorized_seconds: float = 60.0
    #: A single event refused this many times in a row is set aside as a dead letter.
    rejections_before_dead_letter: int = 3
    #: After this many dead letters in a row with nothing accepted between them, the
    #: destination is more likely misconfigured than fed poison: the stream is held.
    dead_letters_before_hold: int = 5
    #: How long such a hold lasts before splitting and dead-lettering resume.
    hold_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            initial_seconds=settings.retry_initial_seconds,
            max_seconds=settings.retry_max_seconds,
            unauthorized_seconds=settings.unauthorized_retry_seconds,
            rejections_before_dead_letter=settings.rejections_before_dead_letter,
            dead_letters_before_hold=settings.dead_letters_before_hold,
            hold_seconds=settings.breaker_hold_seconds,
        )


class Action(Enum):
    #: The destination accepted the request.
    DONE = "done"
    #: Wait `delay` seconds, then send the same request again.
    RETRY = "retry"
    #: Send each half of the request on its own, to find the refused events.
    SPLIT = "split"
    #: Set the request's single event aside as a dead letter; the stream goes on.
    DEAD_LETTER = "dead_letter"
    #: Move on without the request (a replay's refusal: the live stream already handled it).
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: The state to record for a retry (failing or unauthorized), and why, in words.
    state: DeliveryState | None = None
    message: str = ""
    delay: float = 0.0
    #: The retry follows a refusal of the request's content (it counts toward its dead letter).
    counts_rejection: bool = False


def decide(
    verdict: Verdict,
    *,
    events: int,
    rejections: int,
    failures: int,
    replay: bool,
    held: bool,
    policy: RetryPolicy,
    others_accepted: bool = False,
    rng: random.Random | None = None,
) -> Decision:
    """Decide what follows an attempt of a request of `events` events.

    `rejections` counts the refusals of this same request before this one, `failures` the
    destination's consecutive failures before this one, `held` whether the breaker holds,
    `others_accepted` whether a request sent after this one was first sent was accepted.
    """
    outcome = verdict.outcome
    if outcome is Outcome.DELIVERED:
        return Decision(Action.DONE)
    message = verdict.message
    content = outcome is Outcome.REJECTED or (
        outcome is Outcome.UNAUTHORIZED and not replay and (events > 1 or others_accepted)
    )
    if content:
        if replay:
            return Decision(Action.SKIP, message=message)
        if held:
            message = (
                f"{policy.dead_letters_before_hold} events in a row were refused and set aside; holding the "
                f"stream until it accepts one or the hold ends (check its URL and settings): {message}"
            )
        elif events > 1:
            return Decision(Action.SPLIT, message=message)
        elif rejections + 1 >= policy.rejections_before_dead_letter:
            return Decision(Action.DEAD_LETTER, message=message)
        else:
            why = " (other events are accepted: this one's content is refused)" if others_accepted else ""
            message = (
                f"event refused ({rejections + 1}/{policy.rejections_before_dead_letter}){why}: {message}"
            )
            delay = retry_delay(Outcome.REJECTED, failures + 1, verdict.retry_after, policy, rng)
            return Decision(Action.RETRY, DeliveryState.FAILING, message, delay, counts_rejection=True)
        # Only a hold gets here: the breaker holds the stream.
        delay = retry_delay(Outcome.REJECTED, failures + 1, verdict.retry_after, policy, rng)
        return Decision(Action.RETRY, DeliveryState.HELD, message, delay)
    state = DeliveryState.UNAUTHORIZED if outcome is Outcome.UNAUTHORIZED else DeliveryState.FAILING
    delay = retry_delay(outcome, failures + 1, verdict.retry_after, policy, rng)
    return Decision(Action.RETRY, state=state, message=message, delay=delay)


def retry_delay(
    outcome: Outcome,
    failures: int,
    retry_after: float | None,
    policy: RetryPolicy,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with jitter, from `initial_seconds` doubling to `max_seconds`.

    Half the delay is fixed and half random ("equal jitter"): a fleet of destinations that
    failed together does not retry in lock-step, and no retry comes sooner than half the
    schedule. A destination's `Retry-After` lengthens the wait, never shortens it; wrong
    credentials retry no faster than `unauthorized_seconds`, since they rarely fix
    themselves in seconds.
    """
    rng = rng or random.Random()
    base = min(policy.max_seconds, policy.initial_seconds * (2 ** min(max(failures - 1, 0), 32)))
    delay = base / 2 + rng.uniform(0, base / 2)
    if retry_after is not None:
        # The destination's wish is a minimum: `Retry-After: 0` must not become a hot loop.
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    if outcome is Outcome.UNAUTHORIZED:
        delay = max(delay, policy.unauthorized_seconds)
    return delay


class Breaker:
    """Counts dead letters in a row and holds the stream when there are too many.

    A destination refusing everything is likely misconfigured, and setting its whole stream
    aside would be wrong; but real poison can come in runs too, and must not stop the stream
    for good. So the hold ends after `hold_seconds`, and splitting and dead-lettering resume
    (a misconfigured destination then loses at most a few events per hold to its dead
    letters, all of them visible and re-sendable). Its `state` is kept in the store, so a
    restart does not end a hold; times are wall-clock seconds, passed in (tests set them).
    """

    def __init__(self, policy: RetryPolicy, state: BreakerState | None = None) -> None:
        self._policy = policy
        state = state or BreakerState()
        self.dead_in_a_row = state.dead_letters_in_a_row
        self._held_since = state.held_since_ms / 1000 if state.held_since_ms is not None else None

    @property
    def state(self) -> BreakerState:
        held = int(self._held_since * 1000) if self._held_since is not None else None
        return BreakerState(self.dead_in_a_row, held)

    def accepted(self) -> None:
        self.dead_in_a_row = 0
        self._held_since = None

    def dead_lettered(self) -> None:
        self.dead_in_a_row += 1

    def holds(self, now: float) -> bool:
        """True while the stream is held; starts the hold's clock at the first ask."""
        if self.dead_in_a_row < self._policy.dead_letters_before_hold:
            return False
        if self._held_since is None:
            self._held_since = now
        if now - self._held_since >= self._policy.hold_seconds:
            self.accepted()
            return False
        return True
