"""Stopping the service, or a destination's loop (pause, edit), with events still
undelivered or a request in flight loses none of them and sends none twice.

These run with the shipped SQLite setting, `synchronous=FULL` (the other e2e tests use
NORMAL, for speed)."""

from __future__ import annotations

import json
import signal

from tests.support import HANG, Receiver, Service, make_event, wait_until


def test_restart_mid_stream_delivers_every_event_in_order(fresh_service: Service, receiver: Receiver) -> None:
    fresh_service.synchronous = None
    service = fresh_service.start()
    receiver.answer_with(503, body=b"down for maintenance")
    # Ordered: one request at a time, so log order holds at the receiver, across the restart.
    destination = service.add_destination(
        name="r", kind="http", url=receiver.url, event_types=["document.*"], delivery={"ordered": True}
    )
    events = [make_event(action="document.update") for _ in range(60)]
    for start in range(0, 60, 20):
        service.send(events[start : start + 20])
    wait_until(lambda: receiver.failed, what="a failed attempt")
    # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too.
    assert service.stop() in (0, -signal.SIGTERM), service.log()
    assert "Application shutdown complete" in service.log()
    receiver.answer_normally()
    service.start()
    # In order: once a last marker event arrives, everything before it has.
    marker = make_event(action="document.marker")
    service.send(marker)
    wait_until(lambda: marker in receiver.events(), timeout=20, what="all 60 events after restart")
    assert receiver.events() == [*events, marker]
    assert service.destination(destination["id"])["status"]["lag"] == 0


def test_kill_9_during_delivery_loses_nothing(fresh_service: Service, receiver: Receiver) -> None:
    fresh_service.synchronous = None
    service = fresh_service.start()
    receiver.delay(0.02)
    service.add_destination(name="k", kind="http", url=receiver.url, event_types=["document.*"])
    events = [make_event(action="document.view") for _ in range(150)]
    service.send(events)
    wait_until(lambda: len(receiver.events()) >= 20, what="delivery under way")
    service.stop(signal.SIGKILL)
    got_before_kill = len(receiver.events())
    assert got_before_kill < 150, "the kill must land mid-stream"
    service.start()
    wait_until(
        lambda: {e["id"] for e in receiver.events()} >= {e["id"] for e in events},
        timeout=30,
        what="every event after kill -9",
    )
    received = [e["id"] for e in receiver.events()]
    # At least once: duplicates only from the requests in the window (at most 100, the
    # default max_in_flight, of one event each).
    assert len(received) - len(set(received)) <= 100
    assert set(received) == {e["id"] for e in events}


def test_sigterm_lets_the_request_in_flight_finish_and_commits_it(
    fresh_service: Service, receiver: Receiver
) -> None:
    fresh_service.synchronous = None
    service = fresh_service.start()
    receiver.delay(0.05)
    # A window of four requests at 50 ms each: about 80 events a second, so the stop lands
    # mid-stream with requests in flight.
    service.add_destination(
        name="g", kind="http", url=receiver.url, event_types=["document.*"], delivery={"max_in_flight": 4}
    )
    events = [make_event(action="document.view") for _ in range(200)]
    service.send(events)
    wait_until(lambda: len(receiver.events()) >= 10, what="delivery under way")
    service.stop()  # SIGTERM: graceful
    assert len(receiver.events()) < 200, "the stop must land mid-stream"
    receiver.delay(0)
    service.start()
    marker = make_event(action="document.marker")
    service.send(marker)
    wait_until(lambda: marker in receiver.events(), timeout=20, what="the rest after restart")
    wait_until(lambda: len(receiver.events()) >= 201, timeout=30, what="every event after restart")
    # A graceful stop lets the requests in flight be answered and commits them: nothing is
    # sent twice.
    received = [e["id"] for e in receiver.events()]
    if sorted(received) != sorted(e["id"] for e in [*events, marker]):
        print("SERVICE LOG", service.log(whole=True)[-20000:])
    assert sorted(received) == sorted(e["id"] for e in [*events, marker])


def test_shutdown_is_not_held_up_by_a_hanging_destination(fresh_service: Service) -> None:
    hanging = Receiver()
    try:
        hanging.answer_with(HANG)  # never answers, until the test ends
        fresh_service.synchronous = None
        service = fresh_service.start()
        service.add_destination(name="hang", kind="http", url=hanging.url, event_types=["document.*"])
        service.send(make_event())
        wait_until(lambda: hanging.arrivals, what="a request hanging")
        # SIGTERM, and wait for the process to end on its own (the stop grace, bounded by
        # the request timeout, 2 s + 1 s connect in tests, cuts the request). Only if it
        # is still running after 60 s does stop() kill it, and the exit code says so.
        returncode = service.stop(timeout=60)
        assert returncode in (0, -signal.SIGTERM), (returncode, service.log())
        assert "Application shutdown complete" in service.log()
        assert hanging.failed == [] and hanging.requests == [], "the hanging request was never answered"
    finally:
        hanging.close()


def test_an_edit_lets_the_request_in_flight_finish_and_never_sends_it_again(
    fresh_service: Service, receiver: Receiver
) -> None:
    # A long request timeout, so that only the loop's stop could cut the held request
    # short, and the stop grace the README promises the request (it is answered at once).
    # (A pause, by contrast, cuts requests in flight off at once: tests/e2e/test_health.py.)
    fresh_service.extra_env.update(
        {"AUDITRELAY_REQUEST_TIMEOUT_SECONDS": "30", "AUDITRELAY_STOP_GRACE_SECONDS": "20"}
    )
    fresh_service.synchronous = None
    service = fresh_service.start()
    witness = Receiver()
    try:
        destination = service.add_destination(
            name="f", kind="http", url=receiver.url, event_types=["flight.*"]
        )
        receiver.hold()
        in_flight = make_event(action="flight.first")
        service.send(in_flight)
        wait_until(lambda: receiver.arrivals, what="the request in flight")
        path = f"/api/v1/destinations/{destination['id']}"
        with service.admin() as client:
            response = client.patch(path, json={"name": "f-edited"})
        assert response.status_code == 200, response.text
        # A witness destination created after the change: once it delivers, the delivering
        # process has asked the loop to stop (one pass over the destinations does both).
        service.add_destination(name="w", kind="http", url=witness.url, event_types=["witness.*"])
        seen = make_event(action="witness.seen")
        service.send(seen)
        wait_until(lambda: witness.events() == [seen], what="the witness")
        later = make_event(action="flight.later")
        service.send(later)
        receiver.release()  # the request in flight is answered now, while the loop stops
        wait_until(lambda: in_flight in receiver.events(), what="the request in flight answered")
        wait_until(lambda: later in receiver.events(), what="the event sent after the change")
        assert [json.loads(r.body)["id"] for r in receiver.arrivals] == [in_flight["id"], later["id"]], (
            "the request in flight is never sent again"
        )
        wait_until(
            lambda: service.destination(destination["id"])["status"]["delivered_total"] == 2,
            what="both deliveries committed, each once",
        )
    finally:
        witness.close()
