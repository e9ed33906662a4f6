"""Several requests in flight per destination, over real sockets: a slow receiver gets more
than one request at a time, an ordered destination one, and a WAF refusing one event with
403 costs that event alone, in batches and one event per request alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support import Received, Receiver, Reply, Service, in_ns, wait_until

AddDestination = Callable[..., dict[str, Any]]


class Waf(Receiver):
    """A web application firewall in front of a SIEM: any request holding a "poison"
    event is answered 403, as a WAF does; everything else is accepted."""

    def respond(self, request: Received) -> Reply | str:
        if b'"poison"' in request.body:
            return 403, {"Content-Type": "text/html"}, b"<html>Request blocked</html>"
        return super().respond(request)


def status_of(service: Service, destination: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = service.destination(destination["id"])["status"]
    return result


def test_a_slow_receiver_gets_several_requests_at_once_and_every_event_once(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.delay(0.05)
    add_destination(name="slow", kind="http", url=receiver.url, namespaces=[namespace])
    events = [in_ns(namespace) for _ in range(300)]
    service.send(events)
    wait_until(lambda: len(receiver.events()) >= 300, timeout=60, what="300 events at a 50 ms receiver")
    assert sorted(e["id"] for e in receiver.events()) == sorted(e["id"] for e in events)
    assert receiver.most_concurrent > 4, "the window grew past a few requests in flight"


def test_an_ordered_destination_sends_one_request_at_a_time_in_log_order(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.delay(0.01)
    add_destination(
        name="ordered", kind="http", url=receiver.url, namespaces=[namespace], delivery={"ordered": True}
    )
    events = [in_ns(namespace) for _ in range(60)]
    service.send(events)
    wait_until(lambda: len(receiver.events()) >= 60, timeout=30, what="60 events, one at a time")
    assert receiver.events() == events
    assert receiver.most_concurrent == 1


@pytest.mark.parametrize("batch_format", ["json_array", "none"], ids=["batched", "per-event"])
def test_a_waf_refusing_one_event_with_403_costs_that_event_alone(
    service: Service, add_destination: AddDestination, namespace: str, batch_format: str
) -> None:
    waf = Waf()
    try:
        destination = add_destination(
            name="behind-a-waf",
            kind="http",
            url=waf.url,
            namespaces=[namespace],
            options={"batch_format": batch_format},
        )
        before = [in_ns(namespace) for _ in range(20)]
        poison = in_ns(namespace, details={"kind": "poison"})
        after = [in_ns(namespace) for _ in range(20)]
        service.send([*before, poison, *after])
        good = {e["id"] for e in [*before, *after]}
        wait_until(
            lambda: good <= {e["id"] for e in waf.events()},
            timeout=60,
            what="every event but the refused one",
        )
        assert poison["id"] not in {e["id"] for e in waf.events()}
        wait_until(
            lambda: status_of(service, destination)["lag"] == 0, timeout=30, what="the destination caught up"
        )
        with service.admin() as client:
            letters = client.get(f"/api/v1/destinations/{destination['id']}/dead-letters").json()
        assert [d["event_id"] for d in letters["dead_letters"]] == [poison["id"]]
        assert letters["dead_letters"][0]["status"] == 403
        status = status_of(service, destination)
        assert status["state"] == "healthy", status
        assert "set aside" in status["last_error"]["message"]
    finally:
        waf.close()


def test_a_destination_refusing_everything_with_403_reads_unauthorized_and_sets_nothing_aside(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.answer_with(403, {"Content-Type": "text/plain"}, b"invalid token")
    destination = add_destination(
        name="bad-token",
        kind="http",
        url=receiver.url,
        namespaces=[namespace],
        options={"batch_format": "ndjson"},
    )
    service.send([in_ns(namespace) for _ in range(10)])
    status = wait_until(
        lambda: (s := status_of(service, destination))["state"] == "unauthorized" and s,
        timeout=30,
        what="the destination unauthorized",
    )
    assert status["last_error"]["status"] == 403 and status["lag"] >= 10
    with service.admin() as client:
        letters = client.get(f"/api/v1/destinations/{destination['id']}/dead-letters").json()
    assert letters["total"] == 0, "a credentials problem sets nothing aside"
