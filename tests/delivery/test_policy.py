"""The delivery policy as a pure function: each rule, one answer at a time."""

from __future__ import annotations

import random

import pytest

from auditrelay.delivery import Action, Breaker, Decision, RetryPolicy, decide, retry_delay
from auditrelay.destinations import Outcome, Verdict
from auditrelay.model import DeliveryState

POLICY = RetryPolicy(initial_seconds=1.0, max_seconds=300.0, unauthorized_seconds=60.0)


def verdict(outcome: Outcome, retry_after: float | None = None) -> Verdict:
    return Verdict(outcome, f"{outcome.value} answer", retry_after)


def decided(
    outcome: Outcome,
    *,
    events: int = 1,
    rejections: int = 0,
    failures: int = 0,
    replay: bool = False,
    held: bool = False,
    retry_after: float | None = None,
) -> Decision:
    return decide(
        verdict(outcome, retry_after),
        events=events,
        rejections=rejections,
        failures=failures,
        replay=replay,
        held=held,
        policy=POLICY,
    )


def test_an_accepted_request_is_done() -> None:
    assert decided(Outcome.DELIVERED).action is Action.DONE


def test_a_refused_batch_splits_and_a_refused_single_event_counts_up_to_a_dead_letter() -> None:
    assert decided(Outcome.REJECTED, events=8).action is Action.SPLIT
    first = decided(Outcome.REJECTED, rejections=0)
    assert first.action is Action.RETRY and first.state is DeliveryState.FAILING
    assert first.message == "event refused (1/3): rejected answer"
    assert decided(Outcome.REJECTED, rejections=1).action is Action.RETRY
    assert decided(Outcome.REJECTED, rejections=2).action is Action.DEAD_LETTER


def test_a_replay_refusal_is_skipped_never_split_or_dead_lettered() -> None:
    for events, rejections in ((1, 5), (8, 0)):
        assert (
            decided(Outcome.REJECTED, replay=True, events=events, rejections=rejections).action is Action.SKIP
        )


def test_while_held_a_refusal_is_retried_as_held_with_the_reason() -> None:
    held = decided(Outcome.REJECTED, held=True, events=8, rejections=9)
    assert held.action is Action.RETRY and held.state is DeliveryState.HELD
    assert "holding the stream" in held.message


@pytest.mark.parametrize("outcome", [Outcome.RETRY, Outcome.UNAUTHORIZED])
def test_failures_retry_with_the_matching_state(outcome: Outcome) -> None:
    decision = decided(outcome)
    expected = DeliveryState.UNAUTHORIZED if outcome is Outcome.UNAUTHORIZED else DeliveryState.FAILING
    assert decision.action is Action.RETRY and decision.state is expected


def test_retry_after_is_a_floor_and_unauthorized_waits_at_least_its_pace() -> None:
    assert decided(Outcome.RETRY, retry_after=42.0).delay == 42.0
    assert decided(Outcome.RETRY, retry_after=0.0).delay >= 0.5, "Retry-After: 0 is no hot loop"
    assert decided(Outcome.RETRY, retry_after=10_000.0).delay == 3600.0, "bounded at an hour"
    assert decided(Outcome.UNAUTHORIZED).delay == 60.0


def test_backoff_doubles_from_the_initial_delay_up_to_the_cap_with_half_jitter() -> None:
    rng = random.Random(7)
    for failures in range(1, 15):
        base = min(300.0, 2 ** (failures - 1))
        assert base / 2 <= retry_delay(Outcome.RETRY, failures, None, POLICY, rng) <= base


def test_the_breaker_holds_after_n_dead_letters_in_a_row_until_the_hold_ends_or_one_is_accepted() -> None:
    breaker = Breaker(RetryPolicy(dead_letters_before_hold=2, hold_seconds=60.0))
    breaker.dead_lettered()
    assert not breaker.holds(now=0.0)
    breaker.dead_lettered()
    assert breaker.holds(now=10.0) and breaker.holds(now=69.0)
    assert not breaker.holds(now=70.0), "the hold ends after hold_seconds"
    assert breaker.dead_in_a_row == 0
    breaker.dead_lettered()
    breaker.dead_lettered()
    assert breaker.holds(now=100.0)
    breaker.accepted()
    assert not breaker.holds(now=101.0), "an accepted event ends the hold at once"
