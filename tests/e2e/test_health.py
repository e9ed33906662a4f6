"""Health you can read, over real sockets: states as they change (each an audit event in
the log), requests in flight and their age, the rate, Prometheus gauges, and a pause that
cuts off a hanging request at once."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import HANG, Receiver, Service, in_ns, wait_until

AddDestination = Callable[..., dict[str, Any]]


def status_of(service: Service, destination: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = service.destination(destination["id"])["status"]
    return result


def health_events(service: Service, destination: dict[str, Any]) -> list[dict[str, Any]]:
    """The destination's `audit_stream.destination.health` events, in log order."""
    found, after = [], 0
    with service.admin() as client:
        while True:
            page = client.get(
                "/api/v1/events",
                params={"after": after, "limit": 1000, "action": "audit_stream.destination.health"},
            ).json()
            found += [e["event"] for e in page["events"] if e["event"]["entity"]["id"] == destination["id"]]
            if not page["events"]:
                return found
            after = page["next_after"]


def test_states_change_as_the_destination_does_and_each_change_is_an_audit_event(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(name="watched", kind="http", url=receiver.url, namespaces=[namespace])
    assert status_of(service, destination)["state"] == "pending"
    service.send(in_ns(namespace))
    wait_until(lambda: status_of(service, destination)["state"] == "healthy", what="healthy")
    # A SIEM that stops answering: slow (past AUDITRELAY_SLOW_REQUEST_SECONDS, 0.5 s in the
    # tests), with the request in flight shown, then failing when it times out (2 s).
    receiver.answer_with(HANG)
    service.send(in_ns(namespace))
    slow = wait_until(
        lambda: (s := status_of(service, destination))["state"] == "slow" and s, what="the destination slow"
    )
    assert slow["in_flight"] >= 1 and slow["oldest_in_flight_seconds"] >= 0.4
    wait_until(
        lambda: status_of(service, destination)["state"] == "failing", what="failing after the timeout"
    )
    receiver.answer_normally()
    wait_until(
        lambda: status_of(service, destination)["state"] == "healthy", timeout=20, what="healthy again"
    )
    changes = wait_until(
        lambda: (h := health_events(service, destination)) and len(h) >= 4 and h, what="four health events"
    )
    steps = [(e["details"]["from"], e["details"]["to"]) for e in changes]
    assert steps == [("pending", "healthy"), ("healthy", "slow"), ("slow", "failing"), ("failing", "healthy")]
    first = changes[0]
    assert first["actor"] == {"type": "system", "name": "auditrelay"}
    assert first["details"]["destination"] == {"id": destination["id"], "name": "watched", "kind": "http"}
    assert "timed out" in changes[2]["details"]["reason"] or "answer" in changes[2]["details"]["reason"]


def test_the_status_and_the_gauges_show_the_rate_and_lag(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(name="gauged", kind="http", url=receiver.url, namespaces=[namespace])
    service.send([in_ns(namespace) for _ in range(30)])
    wait_until(lambda: len(receiver.events()) >= 30, what="30 events")
    status = wait_until(
        lambda: (s := status_of(service, destination))["events_per_second"] > 0 and s, what="a rate"
    )
    assert status["events_per_second"] <= 30 / 60 + 0.01, "30 events over the last minute"
    assert status["in_flight"] == 0 and status["oldest_in_flight_seconds"] is None
    with service.admin() as admin:
        metrics = admin.get("/metrics").text
    labels = f'destination="{destination["id"]}",name="gauged"'
    assert re.search(rf'^auditrelay_destination_state\{{{labels},state="healthy"\}} 1\.0$', metrics, re.M)
    assert re.search(rf'^auditrelay_destination_state\{{{labels},state="failing"\}} 0\.0$', metrics, re.M)
    assert re.search(rf"^auditrelay_destination_lag_events\{{{labels}\}} 0\.0$", metrics, re.M)
    assert re.search(rf"^auditrelay_destination_in_flight_requests\{{{labels}\}} 0\.0$", metrics, re.M)
    rate = re.search(
        rf"^auditrelay_destination_delivered_events_per_second\{{{labels}\}} (\S+)$", metrics, re.M
    )
    assert rate and float(rate.group(1)) > 0


def test_a_pause_cuts_off_a_hanging_request_at_once(tmp_path: Path, receiver: Receiver) -> None:
    # Requests time out after 60 s here: a pause that waited for the request would show.
    service = Service(tmp_path / "svc", "", extra_env={"AUDITRELAY_REQUEST_TIMEOUT_SECONDS": "60"}).start()
    try:
        receiver.answer_with(HANG)
        destination = service.add_destination(name="hanging", kind="http", url=receiver.url)
        service.send(in_ns("pause/test"))
        wait_until(lambda: receiver.arrivals, what="the request on the wire")
        paused_at = time.time()
        with service.admin() as client:
            assert client.post(f"/api/v1/destinations/{destination['id']}/pause").status_code == 200
        wait_until(
            lambda: receiver.arrivals[0].given_up_at is not None, timeout=10, what="the request cut off"
        )
        assert receiver.arrivals[0].given_up_at is not None
        assert receiver.arrivals[0].given_up_at - paused_at < 10
        status = status_of(service, destination)
        assert status["state"] == "paused" and status["lag"] >= 1, "the event is still owed"
        receiver.answer_normally()
        with service.admin() as client:
            assert client.post(f"/api/v1/destinations/{destination['id']}/resume").status_code == 200
        wait_until(lambda: receiver.events(), what="the event after the resume")
    finally:
        if service.process is not None and service.process.poll() is None:
            service.stop(signal.SIGTERM)
