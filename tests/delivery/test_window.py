"""The adaptive window's rules, with time passed in: grow while round trips hold, shrink on
back pressure and on round trips that grow, never past the maximum."""

from __future__ import annotations

from auditrelay.delivery.window import ConcurrencyWindow


def drive(
    window: ConcurrencyWindow, rtt: float, rounds: int, now: float = 0.0, back_pressure: bool = False
) -> float:
    """`rounds` round trips of `rtt` seconds with the window kept full; returns the time."""
    for _ in range(rounds):
        while not window.full:
            window.take()
        now += rtt
        answers = window.in_flight
        for _ in range(answers):
            window.record(None if back_pressure else rtt, back_pressure, now)
        window.release(answers)
    return now


def test_it_starts_at_one_and_doubles_while_round_trips_hold() -> None:
    window = ConcurrencyWindow(100)
    assert window.limit == 1
    drive(window, 0.05, 12)
    assert window.limit >= 64, "a slow start: doubling per round trip, not adding one"
    drive(window, 0.05, 30)
    assert window.limit == 100


def test_after_congestion_it_grows_by_one_per_round_trip() -> None:
    window = ConcurrencyWindow(1000)
    now = drive(window, 0.05, 8)
    grown = window.limit
    now = drive(window, 0.05, 1, now, back_pressure=True)
    # The answers of that round after the first carry back pressure into the next one too.
    now = drive(window, 0.05, 1, now)
    shrunk = window.limit
    assert shrunk < grown
    drive(window, 0.05, 10, now)
    assert shrunk < window.limit <= shrunk + 10, (shrunk, window.limit)


def test_after_a_fall_back_the_slow_start_goes_up_to_half_the_limit_it_had() -> None:
    window = ConcurrencyWindow(1000)
    now = drive(window, 0.05, 8)
    had = window.limit
    window.fall_back()
    assert window.limit == 1
    now = drive(window, 0.05, 12, now)
    assert had // 2 <= window.limit <= had // 2 + 12, (had, window.limit)


def test_it_never_grows_past_its_maximum() -> None:
    window = ConcurrencyWindow(8)
    drive(window, 0.05, 200)
    assert window.limit == 8


def test_back_pressure_shrinks_it_by_a_tenth_per_round_trip() -> None:
    window = ConcurrencyWindow(100)
    now = drive(window, 0.05, 100)
    grown = window.limit
    assert grown > 20
    drive(window, 0.05, 3, now, back_pressure=True)
    assert window.limit < grown
    assert window.limit >= int(grown * 0.9**4)


def test_round_trips_that_grow_shrink_it() -> None:
    window = ConcurrencyWindow(100)
    now = drive(window, 0.05, 100)
    grown = window.limit
    drive(window, 0.5, 5, now)
    assert window.limit < grown


def test_small_noise_in_round_trips_is_not_read_as_congestion() -> None:
    window = ConcurrencyWindow(100)
    now = drive(window, 0.05, 40)
    grown = window.limit
    # Steady round trips have almost no spread: without the floor (15% of the mean), one round trip 3%
    # longer (a busy host's scheduling noise) would read as congestion and shrink it.
    drive(window, 0.0515, 1, now)
    assert window.limit >= grown


def test_a_window_that_is_not_full_does_not_grow() -> None:
    window = ConcurrencyWindow(100)
    now = 0.0
    for _ in range(50):
        window.take()  # one request at a time, under a limit that could allow more
        now += 0.05
        window.record(0.05, False, now)
        window.release()
        if window.limit > 1:
            break
    limit = window.limit
    for _ in range(50):
        window.take()
        now += 0.05
        window.record(0.05, False, now)
        window.release()
    assert window.limit == limit


def test_ordered_and_fixed_windows_do_not_adapt() -> None:
    fixed = ConcurrencyWindow(4, adaptive=False)
    assert fixed.limit == 4
    drive(fixed, 0.05, 20, back_pressure=True)
    assert fixed.limit == 4
    one = ConcurrencyWindow(1)
    drive(one, 0.05, 20)
    assert one.limit == 1


def test_falling_back_makes_it_one_request_at_a_time() -> None:
    window = ConcurrencyWindow(100)
    drive(window, 0.05, 60)
    window.fall_back()
    assert window.limit == 1
