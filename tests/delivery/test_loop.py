"""The delivery loop's rules, with a scripted sender and an in-memory ledger: no database,
no network, no subprocess; each test runs in milliseconds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from auditrelay.delivery import DeliveryLoop, RetryPolicy
from auditrelay.delivery.testing import InMemoryLedger, ListSource, ScriptedSender, answered
from auditrelay.destinations import HttpKind, Outcome, OutgoingRequest, Verdict
from auditrelay.log import Wakeups
from auditrelay.model import (
    BatchSettings,
    BreakerState,
    DeliverySettings,
    DeliveryState,
    Destination,
    StoredEvent,
)
from auditrelay.security import UnsafeUrl

#: Retries come at once: the rules are under test here, not the schedule.
FAST = RetryPolicy(initial_seconds=0.001, max_seconds=0.002, unauthorized_seconds=0.002)
ACCEPTED = answered(Verdict(Outcome.DELIVERED, "HTTP 200"))
REFUSED = answered(Verdict(Outcome.REJECTED, "HTTP 400: bad event"), 400, b"bad event")


def event(seq: int, poison: bool = False) -> StoredEvent:
    body = json.dumps({"id": f"event-{seq}", "poison": poison}).encode()
    return StoredEvent(seq, None, "document.create", None, 1_700_000_000_000 + seq, body)


def destination(batch_format: str = "none", max_events: int = 100) -> Destination:
    return Destination(
        id="d1",
        org=None,
        name="test",
        kind="http",
        url="http://127.0.0.1:9/",
        token=None,
        headers=(),
        event_types=(),
        namespaces=(),
        content_type=None,
        verification_token="v" * 20,
        active=True,
        options={"batch_format": batch_format},
        batch=BatchSettings(max_events=max_events, max_bytes=1_000_000, linger_ms=0),
    )


def ids(request: OutgoingRequest) -> list[str]:
    return [json.loads(e.body)["id"] for e in request.events]


def poisoned(request: OutgoingRequest) -> bool:
    return any(json.loads(e.body)["poison"] for e in request.events)


class Harness:
    def __init__(
        self,
        events: list[StoredEvent],
        answer: Callable[[OutgoingRequest], Any],
        dest: Destination | None = None,
        policy: RetryPolicy = FAST,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        refuse_url: UnsafeUrl | None = None,
        source: ListSource | None = None,
    ) -> None:
        self.ledger = InMemoryLedger()
        self.source = source or ListSource(events)
        self.sender = ScriptedSender(answer, refuse_url)
        self.loop = DeliveryLoop(
            dest or destination(),
            HttpKind(),
            self.sender,
            self.ledger,
            self.source,
            Wakeups(),
            policy,
            resync_seconds=0.01,
            slow_after=0.2,
            clock=clock,
            wall=wall,
        )

    async def run_until(self, condition: Callable[[], bool], timeout: float = 5.0) -> None:
        """Run the loop until `condition` holds, then stop it and wait for its final commit."""
        task = asyncio.create_task(self.loop.run())
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    if task.done():
                        task.result()
                        raise AssertionError("the loop ended before the condition held")
                    await asyncio.sleep(0.001)
        finally:
            self.loop.request_stop()
            await asyncio.wait_for(task, timeout=5)


async def until(condition: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait for `condition` (the loop runs meanwhile); fail after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


def test_the_cursor_moves_only_after_the_destination_accepts() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        seen_before_answer: list[int] = []

        async def answer(request: OutgoingRequest) -> Any:
            if ids(request) == ["event-2"]:
                seen_before_answer.append(harness.ledger.cursor_at)
                await gate.wait()
            return ACCEPTED

        harness = Harness([event(1), event(2), event(3)], answer, destination(max_events=1))
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: seen_before_answer)
        # Event 2 is on the wire, unanswered: the cursor stays at event 1.
        assert harness.ledger.cursor_at == 1
        gate.set()
        await until(lambda: harness.ledger.cursor_at >= 3)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert seen_before_answer == [1]
        assert harness.ledger.commits == [1, 2, 3]
        assert harness.ledger.delivered_total == 3

    run(scenario)


def test_a_refused_batch_is_split_until_the_refused_event_is_alone_then_dead_lettered() -> None:
    async def scenario() -> None:
        events = [event(n, poison=n == 6) for n in range(1, 9)]
        harness = Harness(events, lambda r: REFUSED if poisoned(r) else ACCEPTED, destination("json_array"))
        await harness.run_until(lambda: harness.ledger.cursor_at == 8)
        sent = [ids(r) for r in harness.sender.sent]
        assert sent[0] == [f"event-{n}" for n in range(1, 9)], "the whole batch first"
        alone = [s for s in sent if s == ["event-6"]]
        assert len(alone) == FAST.rejections_before_dead_letter, "refused alone N times, then set aside"
        accepted = [i for r in harness.sender.sent if not poisoned(r) for i in ids(r)]
        assert sorted(accepted) == sorted(f"event-{n}" for n in range(1, 9) if n != 6)
        assert [d.event_id for d in harness.ledger.dead_letters] == ["event-6"]
        letter = harness.ledger.dead_letters[0]
        assert letter.attempts == 3 and letter.http_status == 400 and "bad event" in letter.error
        assert harness.ledger.last_error is not None
        assert harness.ledger.last_error.startswith("event event-6 (seq 6) refused 3 times and set aside")
        assert harness.ledger.delivered_total == 7

    run(scenario)


def test_an_event_refused_alone_is_retried_then_dead_lettered_after_the_threshold() -> None:
    async def scenario() -> None:
        policy = replace(FAST, rejections_before_dead_letter=5)
        harness = Harness(
            [event(1, poison=True), event(2)], lambda r: REFUSED if poisoned(r) else ACCEPTED, policy=policy
        )
        await harness.run_until(lambda: harness.ledger.cursor_at == 2)
        assert [ids(r) for r in harness.sender.sent] == [["event-1"]] * 5 + [["event-2"]]
        assert [m for _, m in harness.ledger.failures] == [
            f"event refused ({n}/5): HTTP 400: bad event" for n in range(1, 5)
        ]
        assert harness.ledger.dead_letters[0].attempts == 5

    run(scenario)


def test_after_n_dead_letters_in_a_row_the_stream_is_held_until_the_hold_ends() -> None:
    async def scenario() -> None:
        now = [1000.0]
        policy = replace(FAST, dead_letters_before_hold=2, hold_seconds=60.0)
        harness = Harness(
            [event(n, poison=True) for n in range(1, 5)] + [event(5)],
            lambda r: REFUSED if poisoned(r) else ACCEPTED,
            destination(max_events=1),
            policy=policy,
            wall=lambda: now[0],
        )
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: any("holding the stream" in m for _, m in harness.ledger.failures))
        # Two dead letters, then the third poison event is held, not set aside.
        assert [d.event_id for d in harness.ledger.dead_letters] == ["event-1", "event-2"]
        assert harness.ledger.state is DeliveryState.HELD
        assert harness.ledger.cursor_at == 2
        held_attempts = len(harness.sender.sent)
        await until(lambda: len(harness.sender.sent) >= held_attempts + 5)
        assert len(harness.ledger.dead_letters) == 2, "no dead letter while the hold lasts"
        now[0] += 61.0  # the hold ends: dead-lettering resumes
        await until(lambda: harness.ledger.cursor_at >= 5)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert [d.event_id for d in harness.ledger.dead_letters] == [f"event-{n}" for n in range(1, 5)]
        assert harness.ledger.state is DeliveryState.HEALTHY

    run(scenario)


def test_a_replay_never_dead_letters_and_leaves_the_live_cursor_alone() -> None:
    async def scenario() -> None:
        events = [event(n, poison=n == 2) for n in range(1, 5)]
        harness = Harness(events, lambda r: REFUSED if poisoned(r) else ACCEPTED, destination(max_events=1))
        harness.ledger.cursor_at = 4  # the live stream is past all of them
        harness.ledger.add_replay("d1", 1, 4)
        await harness.run_until(lambda: harness.ledger.replays[0].state.value == "done")
        assert harness.ledger.dead_letters == []
        assert harness.ledger.cursor_at == 4 and harness.ledger.commits == []
        assert [ids(r) for r in harness.sender.sent] == [[f"event-{n}"] for n in range(1, 5)]
        assert harness.ledger.replays[0].delivered == 3
        replayed = [a for a in harness.ledger.attempts if a.replay]
        assert [a.outcome for a in replayed] == ["delivered", "rejected", "delivered", "delivered"]

    run(scenario)


def test_retry_after_is_a_floor_for_the_next_attempt() -> None:
    async def scenario() -> None:
        busy = answered(Verdict(Outcome.RETRY, "HTTP 503: busy", retry_after=0.2), 503)
        answers = iter([busy])
        sent_at: list[float] = []

        def answer(request: OutgoingRequest) -> Any:
            sent_at.append(time.monotonic())
            return next(answers, ACCEPTED)

        harness = Harness([event(1)], answer)
        await harness.run_until(lambda: harness.ledger.cursor_at == 1)
        # The policy's own backoff is 1-2 ms here: only Retry-After makes the loop wait this long
        # (less the event loop's clock resolution, by which a timer may fire early).
        assert sent_at[1] - sent_at[0] >= 0.19
        assert harness.ledger.failures == [(DeliveryState.FAILING, "HTTP 503: busy")]
        assert harness.ledger.last_error_status == 503

    run(scenario)


def test_401_and_403_mark_the_destination_unauthorized_and_keep_retrying() -> None:
    async def scenario() -> None:
        denied = answered(Verdict(Outcome.UNAUTHORIZED, "HTTP 403: invalid token"), 403)
        answers = iter([denied, denied, denied])
        harness = Harness([event(1)], lambda r: next(answers, ACCEPTED))
        await harness.run_until(lambda: harness.ledger.cursor_at == 1)
        assert [s for s, _ in harness.ledger.failures] == [DeliveryState.UNAUTHORIZED] * 3
        assert harness.ledger.dead_letters == [], "never dropped"
        assert harness.ledger.state is DeliveryState.HEALTHY and harness.ledger.consecutive_failures == 0
        assert len(harness.sender.sent) == 4

    run(scenario)


def test_a_stop_asked_mid_request_lets_it_finish_and_commits_what_was_accepted() -> None:
    async def scenario() -> None:
        on_wire = asyncio.Event()
        release = asyncio.Event()

        async def answer(request: OutgoingRequest) -> Any:
            if ids(request) == ["event-3"]:
                on_wire.set()
                await release.wait()
            return ACCEPTED

        # One read of five events, one request each, sent one at a time: each accepted
        # request is committed at once, without waiting for the read's end.
        dest = replace(destination(max_events=5), delivery=DeliverySettings(ordered=True))
        harness = Harness([event(n) for n in range(1, 6)], answer, dest)
        task = asyncio.create_task(harness.loop.run())
        await asyncio.wait_for(on_wire.wait(), 5)
        await until(lambda: harness.ledger.cursor_at == 2)
        harness.loop.request_stop()
        release.set()
        await asyncio.wait_for(task, 5)
        assert [ids(r) for r in harness.sender.sent] == [["event-1"], ["event-2"], ["event-3"]]
        assert harness.ledger.cursor_at == 3, "the three accepted events are kept, the rest is not sent"
        assert harness.ledger.delivered_total == 3

    run(scenario)


def test_a_refused_url_is_a_failure_to_show_and_delivery_starts_once_it_passes() -> None:
    async def scenario() -> None:
        harness = Harness([event(1)], lambda r: ACCEPTED, refuse_url=UnsafeUrl("host does not resolve", True))
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.failures)
        assert harness.ledger.failures[0] == (DeliveryState.FAILING, "URL refused: host does not resolve")
        assert harness.sender.sent == []
        harness.sender.refuse_url = None
        await until(lambda: harness.ledger.cursor_at >= 1)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario)


def test_new_events_wake_the_loop_without_waiting_for_the_resync() -> None:
    async def scenario() -> None:
        harness = Harness([event(1)], lambda r: ACCEPTED)
        harness.loop._resync_seconds = 60.0  # only a wake-up can bring the second event quickly
        wakeups = harness.loop._wakeups
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.cursor_at >= 1)
        harness.source.events.append(event(2))
        wakeups.notify()
        await until(lambda: harness.ledger.cursor_at >= 2)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario)


def test_the_linger_holds_back_only_events_right_behind_a_request() -> None:
    class CountingSource(ListSource):
        reads = 0

        async def read_after(
            self, cursor: int, limit: int, max_bytes: int | None = None
        ) -> list[StoredEvent]:
            self.reads += 1
            return await super().read_after(cursor, limit, max_bytes)

    async def scenario() -> None:
        now = [1000.0]
        batch = BatchSettings(max_events=100, max_bytes=1_000_000, linger_ms=60_000)
        dest = replace(destination("json_array"), batch=batch)
        source = CountingSource([event(1)])
        harness = Harness([], lambda r: ACCEPTED, dest, clock=lambda: now[0], source=source)
        harness.loop._resync_seconds = 60.0
        task = asyncio.create_task(harness.loop.run())
        # Nothing was sent for longer than the linger: the first event goes at once.
        await until(lambda: harness.ledger.cursor_at >= 1)
        now[0] += 61.0
        source.events.append(event(2))
        harness.loop._wakeups.notify()
        await until(lambda: harness.ledger.cursor_at >= 2)
        # 0.2 s of the linger are left when event 3 is read: event 4, stored meanwhile, joins it.
        now[0] += 59.8
        reads = source.reads
        source.events.append(event(3))
        harness.loop._wakeups.notify()
        await until(lambda: source.reads > reads)
        source.events.append(event(4))
        await until(lambda: harness.ledger.cursor_at >= 4)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert [ids(r) for r in harness.sender.sent] == [["event-1"], ["event-2"], ["event-3", "event-4"]]

    run(scenario)


def test_a_wake_up_sends_the_new_events_before_checking_for_replays() -> None:
    async def scenario() -> None:
        harness = Harness([event(1)], lambda r: ACCEPTED)
        harness.loop._resync_seconds = 60.0
        checking = asyncio.Event()
        checked = asyncio.Event()
        looked_up = harness.ledger.pending_replay

        async def slow_lookup() -> Any:
            # The store is slow to answer: the lookup of replay jobs waits for the test.
            if checking.is_set():
                await checked.wait()
            return await looked_up()

        harness.ledger.pending_replay = slow_lookup  # type: ignore[method-assign]
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.cursor_at >= 1)
        checking.set()
        harness.source.events.append(event(2))
        harness.loop._wakeups.notify()  # a wake-up also asks for a check of the replay jobs
        await until(lambda: len(harness.sender.sent) >= 2)
        checked.set()
        await until(lambda: harness.ledger.cursor_at >= 2)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)

    run(scenario)


def test_retry_now_ends_the_wait_at_once_and_starts_the_backoff_over() -> None:
    async def scenario() -> None:
        slow = replace(FAST, initial_seconds=60.0, max_seconds=60.0)
        down = answered(Verdict(Outcome.RETRY, "HTTP 503: down"), 503)
        answers = iter([down, down])
        harness = Harness([event(1)], lambda r: next(answers, ACCEPTED), policy=slow)
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.failures)
        assert harness.ledger.consecutive_failures == 1
        harness.loop.retry_now()  # instead of waiting a minute
        await until(lambda: len(harness.ledger.failures) >= 2)
        # The backoff started over: the second failure counts as the first of a new series.
        assert harness.ledger.consecutive_failures == 1
        harness.loop.retry_now()
        await until(lambda: harness.ledger.cursor_at >= 1)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert len(harness.sender.sent) == 3

    run(scenario)


def test_a_backlog_of_large_events_is_read_in_steps_bounded_by_bytes() -> None:
    async def scenario() -> None:
        pad = "x" * 1_000_000
        events = [
            StoredEvent(
                n,
                None,
                "a.b",
                None,
                0,
                json.dumps({"id": f"event-{n}", "poison": False, "pad": pad}).encode(),
            )
            for n in range(1, 41)
        ]
        reads: list[int] = []
        source = ListSource(events)
        original = source.read_after

        async def counting(cursor: int, limit: int, max_bytes: int | None = None) -> list[StoredEvent]:
            found = await original(cursor, limit, max_bytes)
            reads.append(sum(len(e.body) for e in found))
            return found

        source.read_after = counting  # type: ignore[method-assign]
        harness = Harness(events, lambda r: ACCEPTED, destination("ndjson"), source=source)
        await harness.run_until(lambda: harness.ledger.cursor_at == 40)
        budget = HttpKind().read_bytes(destination("ndjson"))
        assert max(reads) <= budget + 1_100_000, "a read ends at the event that reaches the budget"
        assert len([r for r in reads if r]) >= 40_000_000 // (budget + 1_100_000)
        assert max(len(r.content) for r in harness.sender.sent) <= 1_000_000 + 1_100_000

    run(scenario)


def test_a_hold_written_before_a_restart_goes_on_and_ends_at_its_time() -> None:
    async def scenario() -> None:
        now = [5000.0]
        policy = replace(FAST, dead_letters_before_hold=2, hold_seconds=60.0)
        harness = Harness(
            [event(1, poison=True), event(2)],
            lambda r: REFUSED if poisoned(r) else ACCEPTED,
            policy=policy,
            wall=lambda: now[0],
        )
        # What a loop before the restart left: two dead letters in a row, held for 30 s.
        harness.ledger.breaker_state = BreakerState(2, 4970_000)
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: len(harness.sender.sent) >= 3)
        assert harness.ledger.dead_letters == [], "still held: nothing set aside"
        assert all("holding the stream" in m for _, m in harness.ledger.failures)
        assert harness.ledger.breaker_state == BreakerState(2, 4970_000), "the hold's start is kept"
        now[0] += 31.0  # 61 s since the hold began
        await until(lambda: harness.ledger.cursor_at >= 2)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert [d.event_id for d in harness.ledger.dead_letters] == ["event-1"]
        assert harness.ledger.breaker_state == BreakerState(), (
            "event 2 accepted: the run of dead letters ended"
        )

    run(scenario)


# -- the window -------------------------------------------------------------------------


def windowed(max_in_flight: int = 50, batch_format: str = "none", max_events: int = 100) -> Destination:
    return replace(
        destination(batch_format, max_events), delivery=DeliverySettings(max_in_flight=max_in_flight)
    )


class Concurrency:
    """Answers after `delay` seconds, counting how many requests are in flight at once."""

    def __init__(self, delay: float = 0.005) -> None:
        self.delay = delay
        self.now = 0
        self.most = 0

    async def __call__(self, request: OutgoingRequest) -> Any:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.now -= 1
        return ACCEPTED


def test_several_requests_are_in_flight_once_the_window_has_grown() -> None:
    async def scenario() -> None:
        answer = Concurrency()
        harness = Harness([event(n) for n in range(1, 401)], answer, windowed(max_in_flight=20))
        await harness.run_until(lambda: harness.ledger.cursor_at == 400)
        assert 1 < answer.most <= 20, answer.most
        assert sorted(ids(r)[0] for r in harness.sender.sent) == sorted(f"event-{n}" for n in range(1, 401))
        assert harness.ledger.delivered_total == 400

    run(scenario)


def test_an_ordered_destination_has_one_request_in_flight_at_a_time() -> None:
    async def scenario() -> None:
        answer = Concurrency()
        dest = replace(destination(), delivery=DeliverySettings(ordered=True))
        harness = Harness([event(n) for n in range(1, 201)], answer, dest)
        await harness.run_until(lambda: harness.ledger.cursor_at == 200)
        assert answer.most == 1
        assert [ids(r)[0] for r in harness.sender.sent] == [f"event-{n}" for n in range(1, 201)]

    run(scenario)


def test_the_cursor_passes_only_the_longest_run_of_accepted_requests() -> None:
    async def scenario() -> None:
        hold = asyncio.Event()

        async def answer(request: OutgoingRequest) -> Any:
            # Event 300 hangs until released (the window has grown by then); every other
            # request is answered after a short round trip.
            if ids(request) == ["event-300"]:
                await hold.wait()
            else:
                await asyncio.sleep(0.002)
            return ACCEPTED

        harness = Harness([event(n) for n in range(1, 1001)], answer, windowed(max_in_flight=16))
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.cursor_at == 299)
        window = harness.loop._window

        def blocked() -> bool:
            # Only event 300 in flight, the window full, and every slot held by a request
            # past the cursor (the commits up to 299 have freed theirs): nothing more may go
            # until event 300 is answered. A state, not a delay: it holds under any load.
            beyond = len(harness.sender.sent) - 299
            return harness.loop.in_flight == 1 and window.full and window.in_flight == beyond

        await until(blocked)
        sent = len(harness.sender.sent)
        await asyncio.sleep(0.05)
        assert harness.ledger.cursor_at == 299, "answers after event 300 do not move the cursor past it"
        assert len(harness.sender.sent) == sent <= 299 + 16, "no more than the window is sent meanwhile"
        assert sent > 301, "requests after the hanging one were sent and answered meanwhile"
        hold.set()
        await until(lambda: harness.ledger.cursor_at == 1000)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert harness.ledger.delivered_total == 1000
        assert len(harness.sender.sent) == 1000, "nothing sent twice"

    run(scenario)


def test_a_crash_re_sends_at_most_the_requests_in_the_window() -> None:
    async def scenario() -> None:
        answer = Concurrency(0.003)
        harness = Harness([event(n) for n in range(1, 3001)], answer, windowed(max_in_flight=16))
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.cursor_at > 500 and harness.loop.in_flight > 2)
        task.cancel()  # as a SIGKILL would, at a random point: nothing more is answered
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sent = {ids(r)[0] for r in harness.sender.sent}
        committed = harness.ledger.cursor_at
        re_sent = [n for n in range(committed + 1, 3001) if f"event-{n}" in sent]
        assert 0 < len(re_sent) <= 16, "what a restart re-sends is within the window"

    run(scenario)


def test_a_403_for_one_event_of_a_batch_isolates_it_while_the_rest_is_accepted() -> None:
    async def scenario() -> None:
        waf = answered(Verdict(Outcome.UNAUTHORIZED, "HTTP 403: request blocked"), 403, b"blocked")
        events = [event(n, poison=n == 5) for n in range(1, 9)]
        harness = Harness(events, lambda r: waf if poisoned(r) else ACCEPTED, destination("json_array"))
        await harness.run_until(lambda: harness.ledger.cursor_at == 8)
        assert [d.event_id for d in harness.ledger.dead_letters] == ["event-5"]
        accepted = sorted(i for r in harness.sender.sent if not poisoned(r) for i in ids(r))
        assert accepted == sorted(f"event-{n}" for n in range(1, 9) if n != 5)
        assert DeliveryState.UNAUTHORIZED not in {s for s, _ in harness.ledger.failures}
        assert harness.ledger.dead_letters[0].http_status == 403

    run(scenario)


def test_a_403_for_one_event_is_a_content_refusal_once_later_events_are_accepted() -> None:
    async def scenario() -> None:
        waf = answered(Verdict(Outcome.UNAUTHORIZED, "HTTP 403: request blocked"), 403, b"blocked")

        async def answer(request: OutgoingRequest) -> Any:
            await asyncio.sleep(0.002)
            return waf if poisoned(request) else ACCEPTED

        # One event per request: the events sent after the refused one are the evidence.
        events = [event(n, poison=n == 200) for n in range(1, 401)]
        harness = Harness(events, answer, windowed(max_in_flight=16))
        await harness.run_until(lambda: harness.ledger.cursor_at == 400)
        assert [d.event_id for d in harness.ledger.dead_letters] == ["event-200"]
        assert harness.ledger.delivered_total == 399
        assert all("content is refused" in m for _, m in harness.ledger.failures), harness.ledger.failures

    run(scenario)


def test_a_destination_refusing_everything_with_403_is_unauthorized_and_loses_nothing() -> None:
    async def scenario() -> None:
        denied = answered(Verdict(Outcome.UNAUTHORIZED, "HTTP 403: invalid token"), 403)
        harness = Harness([event(n) for n in range(1, 9)], lambda r: denied, destination("json_array"))
        await harness.run_until(lambda: len(harness.ledger.failures) >= 3)
        assert harness.ledger.dead_letters == []
        assert harness.ledger.cursor_at == 0
        assert harness.ledger.state is DeliveryState.UNAUTHORIZED

    run(scenario)


def test_requests_that_failed_while_the_destination_was_down_go_again_at_once_when_it_is_back() -> None:
    async def scenario() -> None:
        refused = answered(Verdict(Outcome.RETRY, "connection failed: refused"), None)
        down = False
        tries_of_250 = 0
        refusals = 0

        async def answer(request: OutgoingRequest) -> Any:
            nonlocal down, tries_of_250, refusals
            first_of_250 = False
            if ids(request)[0] == "event-250":
                tries_of_250 += 1
                # Down from the first try of event 250 (which takes a while to fail, so the
                # requests after it go out and fail meanwhile) until its retry.
                down = first_of_250 = tries_of_250 == 1
            was_down = down
            await asyncio.sleep(0.03 if first_of_250 else 0.002)
            refusals += was_down
            return refused if was_down else ACCEPTED

        # A backoff long enough that waiting it out once per failed request would show.
        policy = replace(FAST, initial_seconds=0.2, max_seconds=0.2)
        harness = Harness([event(n) for n in range(1, 601)], answer, windowed(max_in_flight=16), policy)
        await harness.run_until(lambda: harness.ledger.cursor_at == 600)
        assert harness.ledger.delivered_total == 600
        assert refusals > 1, "requests in the window failed too while it was down"
        assert len(harness.ledger.failures) == 1, (
            "only the oldest waited out a backoff; the rest went at once"
        )

    run(scenario)


# -- health -----------------------------------------------------------------------------


def test_each_change_of_state_is_written_once_with_its_reason() -> None:
    async def scenario() -> None:
        down = answered(Verdict(Outcome.RETRY, "HTTP 503: down"), 503)
        answers = iter([ACCEPTED, down, down])
        source = ListSource([event(1)])
        harness = Harness([], lambda r: next(answers, ACCEPTED), source=source)
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.cursor_at == 1)
        source.events.append(event(2))
        harness.loop._wakeups.notify()
        await until(lambda: harness.ledger.cursor_at == 2)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        steps = [(c.before, c.after) for c in harness.ledger.changes]
        assert steps == [
            (DeliveryState.PENDING, DeliveryState.HEALTHY),
            (DeliveryState.HEALTHY, DeliveryState.FAILING),
            (DeliveryState.FAILING, DeliveryState.HEALTHY),
        ]
        assert "HTTP 503: down" in harness.ledger.changes[1].reason
        assert "after 2 failed attempts" in harness.ledger.changes[2].reason

    run(scenario)


def test_a_request_unanswered_past_the_threshold_makes_the_destination_slow_until_it_is_answered() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def answer(request: OutgoingRequest) -> Any:
            if ids(request) == ["event-2"]:
                await gate.wait()
            return ACCEPTED

        harness = Harness([event(1), event(2)], answer)
        task = asyncio.create_task(harness.loop.run())
        await until(lambda: harness.ledger.state is DeliveryState.SLOW)
        assert harness.ledger.cursor_at == 1
        assert (
            harness.ledger.in_flight.requests == 1 and harness.ledger.in_flight.oldest_sent_at_ms is not None
        )
        slow = harness.ledger.changes[-1]
        assert (slow.before, slow.after) == (DeliveryState.HEALTHY, DeliveryState.SLOW)
        assert "waited" in slow.reason
        gate.set()
        await until(lambda: harness.ledger.cursor_at == 2)
        harness.loop.request_stop()
        await asyncio.wait_for(task, 5)
        assert harness.ledger.state is DeliveryState.HEALTHY
        assert harness.ledger.changes[-1].after is DeliveryState.HEALTHY
        assert harness.ledger.in_flight.requests == 0

    run(scenario)


def test_a_lone_403_is_probed_with_the_next_request_even_while_the_window_is_one() -> None:
    async def scenario() -> None:
        waf = answered(Verdict(Outcome.UNAUTHORIZED, "HTTP 403: request blocked"), 403, b"blocked")
        # Credentials problems wait 30 s: only the probe's evidence gets this done in time.
        policy = replace(FAST, unauthorized_seconds=30)
        events = [event(n, poison=n == 2) for n in range(1, 6)]
        harness = Harness(events, lambda r: waf if poisoned(r) else ACCEPTED, windowed(), policy)
        await harness.run_until(lambda: harness.ledger.cursor_at == 5)
        assert [d.event_id for d in harness.ledger.dead_letters] == ["event-2"]
        assert harness.ledger.delivered_total == 4
        assert len({ids(r)[0] for r in harness.sender.sent}) == 5 and len(harness.sender.sent) == 7
        assert [ids(r)[0] for r in harness.sender.sent][:3] == ["event-1", "event-2", "event-3"]

    run(scenario)


def test_an_ordered_destination_never_probes_and_reads_unauthorized() -> None:
    async def scenario() -> None:
        waf = answered(Verdict(Outcome.UNAUTHORIZED, "HTTP 403: request blocked"), 403, b"blocked")
        dest = replace(destination(), delivery=DeliverySettings(ordered=True))
        events = [event(n, poison=n == 2) for n in range(1, 6)]
        harness = Harness(events, lambda r: waf if poisoned(r) else ACCEPTED, dest)
        await harness.run_until(lambda: len(harness.ledger.failures) >= 3)
        assert {ids(r)[0] for r in harness.sender.sent} == {"event-1", "event-2"}, "nothing out of turn"
        assert harness.ledger.state is DeliveryState.UNAUTHORIZED and harness.ledger.dead_letters == []

    run(scenario)
