"""Delivery over real sockets: only new events, order, filters, headers, auth per kind,
formats, pause/resume, failures and isolation between destinations."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from typing import Any

from tests.support import HANG, HecReceiver, Receiver, Service, SumoReceiver, in_ns, make_event, wait_until

AddDestination = Callable[..., dict[str, Any]]
#: One request at a time: tests that wait for a last "marker" event rely on log order.
ORDERED = {"ordered": True}


def test_new_destination_gets_only_later_events_field_by_field_in_order(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    earlier = in_ns(namespace)
    service.send(earlier)
    # Ordered: one request at a time, so the receiver sees them in log order.
    add_destination(
        name="grist-like",
        kind="http",
        url=receiver.url + "/audit",
        namespaces=[namespace],
        delivery=ORDERED,
    )
    later = [in_ns(namespace, action=f"document.step{i}") for i in range(10)]
    service.send(later[:4])
    service.send(later[4:])
    # Delivery is in order: once a last marker event arrives, everything before it has.
    marker = in_ns(namespace, action="marker.end")
    service.send(marker)
    wait_until(lambda: marker in receiver.events(), what="ten events and the marker")
    # One event per request, the native format exactly as sent (plus nothing).
    assert len(receiver.requests) == 11
    assert receiver.events() == [*later, marker]
    request = receiver.requests[0]
    assert request.path == "/audit"
    assert request.header("content-type") == "application/json"


def test_splunk_hec_envelopes_batches_and_auth(
    service: Service, add_destination: AddDestination, hec: HecReceiver, namespace: str
) -> None:
    destination = add_destination(
        name="splunk",
        kind="splunk_hec",
        url=hec.url,
        token=f"Splunk {hec.token}",
        namespaces=[namespace],
        options={"index": "audit", "host": "relay-1"},
    )
    events = [in_ns(namespace, timestamp=f"2024-11-13T06:00:{i:02d}.518Z") for i in range(50)]
    service.send(events)
    wait_until(lambda: len(hec.events()) >= 50, what="50 events at HEC")
    envelopes = hec.envelopes()
    assert [e["event"] for e in envelopes] == events
    first = envelopes[0]
    assert set(first) == {"time", "host", "source", "sourcetype", "index", "event"}
    assert first["time"] == 1731477600.518
    # Exact milliseconds, also where float arithmetic would round (…19.624 → …19.623).
    tricky = in_ns(namespace, timestamp="1987-02-15T01:24:19.624Z")
    service.send(tricky)
    wait_until(lambda: len(hec.envelopes()) >= 51, what="the tricky timestamp")
    assert b'"time":540350659.624,' in hec.requests[-1].body
    assert (first["host"], first["source"], first["sourcetype"], first["index"]) == (
        "relay-1",
        "auditrelay",
        "auditrelay:event",
        "audit",
    )
    request = hec.requests[0]
    assert request.path == "/services/collector/event"
    assert request.header("authorization") == f"Splunk {hec.token}"
    assert request.header("x-auditrelay-streaming-token") == destination["verification_token"]
    assert len(hec.requests) < 50, "HEC events travel in batches, several per request"


def test_hec_token_without_prefix_and_explicit_path(
    service: Service, add_destination: AddDestination, hec: HecReceiver, namespace: str
) -> None:
    add_destination(
        name="s",
        kind="splunk_hec",
        url=hec.url + "/custom/collector",
        token=hec.token,
        namespaces=[namespace],
    )
    service.send(in_ns(namespace))
    wait_until(lambda: hec.events(), what="an event")
    assert hec.requests[0].path == "/custom/collector"
    assert hec.requests[0].header("authorization") == f"Splunk {hec.token}"


def test_sumo_logic_gets_gzip_ndjson_with_metadata_headers(
    service: Service, add_destination: AddDestination, sumo: SumoReceiver, namespace: str
) -> None:
    add_destination(
        name="sumo",
        kind="sumo_logic",
        url=sumo.url + "/receiver/v1/http/SECRETCODE123456",
        namespaces=[namespace],
        options={"category": "prod/audit", "source_name": "auditrelay", "source_host": "h1"},
    )
    events = [in_ns(namespace) for _ in range(20)]
    service.send(events)
    wait_until(lambda: len(sumo.events()) >= 20, what="20 events at Sumo")
    assert sumo.events() == events
    request = sumo.requests[0]
    assert request.path == "/receiver/v1/http/SECRETCODE123456"
    assert request.header("content-encoding") == "gzip"
    assert gzip.decompress(request.body).endswith(b"\n")
    assert request.header("x-sumo-category") == "prod/audit"
    assert request.header("x-sumo-name") == "auditrelay"
    assert request.header("x-sumo-host") == "h1"
    assert request.header("authorization") is None


def test_headers_verification_token_authorization_and_content_type_override(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="h",
        kind="http",
        url=receiver.url,
        token="Bearer abc.def.ghi",
        headers=[
            {"name": "X-Team", "value": "sec"},
            {"name": "X-Key", "value": "k-123456789", "secret": True},
        ],
        content_type="application/vnd.siem+json",
        namespaces=[namespace],
    )
    service.send(in_ns(namespace))
    wait_until(lambda: receiver.requests, what="a request")
    request = receiver.requests[0]
    assert request.header("authorization") == "Bearer abc.def.ghi"
    assert request.header("x-team") == "sec"
    assert request.header("x-key") == "k-123456789"
    assert request.header("content-type") == "application/vnd.siem+json"
    assert request.header("x-auditrelay-streaming-token") == destination["verification_token"]


def test_http_batches_as_json_array_and_ndjson(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    array, ndjson = Receiver(), Receiver()
    try:
        add_destination(
            name="a",
            kind="http",
            url=array.url,
            namespaces=[namespace],
            options={"batch_format": "json_array"},
            batch={"max_events": 7},
        )
        add_destination(
            name="n", kind="http", url=ndjson.url, namespaces=[namespace], options={"batch_format": "ndjson"}
        )
        events = [in_ns(namespace) for _ in range(30)]
        service.send(events)
        wait_until(lambda: len(array.events()) >= 30 and len(ndjson.events()) >= 30, what="30 events each")
        # Requests of one window may arrive out of order; within a request, log order holds.
        by_id = sorted(events, key=lambda e: e["id"])
        assert sorted(array.events(), key=lambda e: e["id"]) == by_id
        assert sorted(ndjson.events(), key=lambda e: e["id"]) == by_id
        position = {e["id"]: i for i, e in enumerate(events)}
        for request in array.requests:
            in_request = [position[e["id"]] for e in json.loads(request.body)]
            assert in_request == sorted(in_request)
        assert all(len(json.loads(r.body)) <= 7 for r in array.requests)
        assert ndjson.requests[0].header("content-type") == "application/x-ndjson"
    finally:
        array.close()
        ndjson.close()


def test_filters_exact_prefix_and_namespace(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    exact, prefix, spaces = Receiver(), Receiver(), Receiver()
    try:
        add_destination(
            name="exact",
            kind="http",
            url=exact.url,
            event_types=["user.login"],
            namespaces=[namespace],
            delivery=ORDERED,
        )
        add_destination(
            name="prefix",
            kind="http",
            url=prefix.url,
            event_types=["document.*"],
            namespaces=[namespace],
            delivery=ORDERED,
        )
        add_destination(
            name="ns", kind="http", url=spaces.url, namespaces=[f"{namespace}/web"], delivery=ORDERED
        )
        sent = [
            in_ns(namespace, action="user.login"),
            in_ns(namespace, action="user.logout"),
            in_ns(namespace, action="document.create"),
            in_ns(namespace, action="document.acl.update"),
            in_ns(namespace, action="documents.other"),
            make_event(action="document.create", entity={"type": "p", "path": f"{namespace}/web/api"}),
            make_event(action="user.login", entity={"type": "p", "path": f"{namespace}/webshop"}),
        ]
        service.send(sent)
        # Delivery is in order: once each destination has its marker, it has everything
        # it was going to get of `sent`.
        markers = {
            "exact": in_ns(namespace, action="user.login", details="marker"),
            "prefix": in_ns(namespace, action="document.marker"),
            "spaces": make_event(action="marker.end", entity={"type": "p", "path": f"{namespace}/web/m"}),
        }
        service.send(list(markers.values()))
        wait_until(
            lambda: (
                markers["exact"] in exact.events()
                and markers["prefix"] in prefix.events()
                and markers["spaces"] in spaces.events()
            ),
            what="every destination's marker",
        )
        # `{namespace}/webshop` is inside `{namespace}`, but not inside `{namespace}/web`.
        assert [e["id"] for e in exact.events()] == [sent[0]["id"], sent[6]["id"], markers["exact"]["id"]]
        assert [e["id"] for e in prefix.events()] == [
            sent[2]["id"],
            sent[3]["id"],
            sent[5]["id"],
            markers["prefix"]["id"],
        ]
        assert [e["id"] for e in spaces.events()] == [sent[5]["id"], markers["spaces"]["id"]]
    finally:
        for r in (exact, prefix, spaces):
            r.close()


def test_pause_keeps_the_position_and_resume_continues_from_it(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    witness = Receiver()
    try:
        destination = add_destination(
            name="p", kind="http", url=receiver.url, namespaces=[namespace], delivery=ORDERED
        )
        first = [in_ns(namespace) for _ in range(3)]
        service.send(first)
        wait_until(lambda: len(receiver.events()) >= 3, what="first three")
        with service.admin() as client:
            response = client.post(f"/api/v1/destinations/{destination['id']}/pause")
        assert response.status_code == 200, response.text
        paused = response.json()
        assert paused["active"] is False and paused["status"]["state"] == "paused"
        # A witness destination, created after the pause: once it delivers, the delivering
        # process has seen the pause (one pass over the destinations starts the one and
        # stops the other), and has had the events sent meanwhile to deliver.
        add_destination(name="witness", kind="http", url=witness.url, namespaces=[namespace])
        during = [in_ns(namespace) for _ in range(5)]
        service.send(during)
        wait_until(lambda: len(witness.events()) >= 5, what="the witness to get the five")
        assert receiver.events() == first, "a paused destination receives nothing"
        status = service.destination(destination["id"])["status"]
        assert status["state"] == "paused" and status["lag"] >= 5
        resuming = time.time()
        with service.admin() as client:
            response = client.post(f"/api/v1/destinations/{destination['id']}/resume")
        assert response.status_code == 200, response.text
        assert response.json()["active"] is True
        marker = in_ns(namespace, action="marker.end")
        service.send(marker)
        wait_until(lambda: marker in receiver.events(), what="the five sent while paused, and a marker")
        assert receiver.events() == [*first, *during, marker]
        assert all(r.at >= resuming for r in receiver.requests[3:]), "nothing of it before the resume"
        wait_until(lambda: service.destination(destination["id"])["status"]["lag"] == 0, what="lag 0")
    finally:
        witness.close()


def test_500_then_200_is_retried_while_another_destination_keeps_flowing(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    flaky, healthy = Receiver(), Receiver()
    try:
        flaky.answer_with(500, {"Content-Type": "text/plain"}, b"internal trouble")
        broken = add_destination(name="flaky", kind="http", url=flaky.url, namespaces=[namespace])
        add_destination(name="healthy", kind="http", url=healthy.url, namespaces=[namespace])
        events = [in_ns(namespace) for _ in range(5)]
        service.send(events)
        wait_until(lambda: len(healthy.events()) >= 5, what="healthy destination gets all")
        status = wait_until(
            lambda: (s := service.destination(broken["id"])["status"])["consecutive_failures"] >= 2 and s,
            what="failures recorded",
        )
        assert status["state"] == "failing"
        assert status["last_error"]["status"] == 500
        assert "internal trouble" in status["last_error"]["message"]
        assert status["next_retry_at"] is not None
        assert flaky.events() == []
        flaky.answer_normally()
        wait_until(lambda: len(flaky.events()) >= 5, timeout=15, what="flaky destination recovers")
        # Every event once; after the retry, the requests of the window may come in any order.
        by_id = sorted(events, key=lambda e: e["id"])
        assert sorted(flaky.events(), key=lambda e: e["id"]) == by_id
        assert sorted(healthy.events(), key=lambda e: e["id"]) == by_id
        status = wait_until(
            lambda: (s := service.destination(broken["id"])["status"])["state"] == "healthy" and s,
            what="healthy",
        )
        assert status["consecutive_failures"] == 0 and status["delivered_total"] >= 5 and status["lag"] == 0
    finally:
        flaky.close()
        healthy.close()


def test_retry_after_is_honoured_on_429(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.script = [(429, {"Retry-After": "2"}, b"slow down")]
    add_destination(name="r", kind="http", url=receiver.url, namespaces=[namespace])
    sent_at = time.time()
    service.send(in_ns(namespace))
    wait_until(lambda: receiver.events(), timeout=10, what="event after Retry-After")
    # Our own retry delay here is 0.1 s; only Retry-After explains a wait of about 2 s.
    assert receiver.requests[0].at - sent_at >= 1.9


def test_a_hanging_destination_is_cut_off_and_delays_no_other(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    hanging, healthy = Receiver(), Receiver()
    try:
        hanging.script = ["hang"]
        add_destination(name="hang", kind="http", url=hanging.url, namespaces=[namespace])
        add_destination(name="ok", kind="http", url=healthy.url, namespaces=[namespace])
        first = in_ns(namespace)
        service.send(first)
        wait_until(lambda: healthy.events(), what="healthy gets the first event")
        # The hanging destination is still stuck on its first request; others flow on.
        more = [in_ns(namespace) for _ in range(3)]
        service.send(more)
        wait_until(lambda: len(healthy.events()) >= 4, what="healthy gets the rest")
        assert hanging.events() == []
        # The service's request timeout (2 s in tests) cuts the hang; the retry succeeds.
        wait_until(lambda: len(hanging.events()) >= 4, timeout=15, what="hanging destination recovers")
        assert hanging.events() == [first, *more]
        assert healthy.requests[-1].at < hanging.requests[0].at
    finally:
        hanging.close()
        healthy.close()


def test_wrong_hec_token_is_unauthorized_until_fixed_and_nothing_is_dropped(
    service: Service, add_destination: AddDestination, hec: HecReceiver, namespace: str
) -> None:
    destination = add_destination(
        name="u", kind="splunk_hec", url=hec.url, token="bad-token", namespaces=[namespace]
    )
    events = [in_ns(namespace) for _ in range(3)]
    service.send(events)
    status = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["state"] == "unauthorized" and s,
        what="unauthorized state",
    )
    assert status["last_error"]["status"] == 403 and "HEC code 4" in status["last_error"]["message"]
    with service.admin() as client:
        response = client.patch(f"/api/v1/destinations/{destination['id']}", json={"token": hec.token})
        assert response.status_code == 200
    wait_until(lambda: len(hec.events()) >= 3, what="events after the token is fixed")
    assert hec.events() == events


def test_status_reports_cursor_lag_and_delivered_total(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(name="s", kind="http", url=receiver.url, namespaces=[namespace])
    service.send([in_ns(namespace) for _ in range(4)])
    wait_until(lambda: len(receiver.events()) >= 4, what="four events")
    status = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["delivered_total"] >= 4 and s,
        what="delivered_total",
    )
    assert status["state"] == "healthy" and status["last_success_at"] is not None
    assert status["lag"] == status["head"] - status["cursor"]
    assert status["delivered_total"] == 4


def test_events_wake_delivery_at_once_without_polling(fresh_service: Service, receiver: Receiver) -> None:
    # With the safety-net poll at an hour, only the wake-up on commit can deliver at all
    # within the wait below.
    fresh_service.extra_env["AUDITRELAY_RESYNC_SECONDS"] = "3600"
    service = fresh_service.start()
    service.add_destination(name="rt", kind="http", url=receiver.url, event_types=["realtime.*"])
    # A first event shows the loop runs; the next ones find it waiting for events.
    warm_up = make_event(action="realtime.warmup")
    service.send(warm_up)
    wait_until(lambda: receiver.events() == [warm_up], what="the loop to deliver a first event")
    for _ in range(3):
        event = make_event(action="realtime.ping")
        service.send(event)
        wait_until(lambda e=event: e in receiver.events(), what="the wake-up")  # type: ignore[misc]


def test_retry_after_zero_does_not_become_a_hot_loop(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.answer_with(503, {"Retry-After": "0"}, b"busy")
    add_destination(name="z", kind="http", url=receiver.url, namespaces=[namespace])
    service.send(in_ns(namespace))
    wait_until(lambda: len(receiver.failed) >= 6, what="six attempts")
    # Backoff from 0.1 s doubling to 1 s in tests, half of it fixed: after failure n the
    # next attempt waits at least min(1, 0.1 * 2**(n-1)) / 2, whatever Retry-After: 0 says.
    at = [r.at for r in receiver.failed[:6]]
    for n in range(1, 6):
        least = min(1.0, 0.1 * 2 ** (n - 1)) / 2
        assert at[n] - at[n - 1] >= least * 0.95, (n, at[n] - at[n - 1], least)


def test_a_hanging_destination_being_restarted_does_not_delay_a_new_one(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    hanging, fresh = Receiver(), Receiver()
    try:
        hanging.answer_with(HANG)
        stuck = add_destination(name="stuck", kind="http", url=hanging.url, namespaces=[namespace])
        service.send(in_ns(namespace))
        wait_until(lambda: hanging.arrivals, what="a hanging request")
        with service.admin() as client:
            # Restarting the stuck loop waits for its request in flight (cut off by the
            # request timeout, 2 s in tests, at the latest)...
            response = client.patch(f"/api/v1/destinations/{stuck['id']}", json={"name": "stuck-2"})
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "stuck-2"
        # ...which must not hold up a destination created meanwhile: it gets its event
        # while the stuck loop is still waiting for that request.
        add_destination(name="fresh", kind="http", url=fresh.url, namespaces=[namespace])
        event = in_ns(namespace)
        service.send(event)
        wait_until(lambda: fresh.events(), what="the new destination's event")
        assert fresh.events() == [event]
        given_up_at = hanging.arrivals[0].given_up_at
        assert given_up_at is None or fresh.requests[0].at < given_up_at, (
            "the new destination waited for the stuck one's request to end"
        )
    finally:
        hanging.close()
        fresh.close()


def test_a_destination_trickling_its_answer_is_cut_off_by_the_total_timeout(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    import socket
    import threading

    # A raw server that answers one byte every 0.3 s, forever: each read succeeds, so only
    # a deadline on the whole exchange can stop it. The second connection answers normally.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    connections = []
    stop = threading.Event()

    def serve() -> None:
        first = True
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            connections.append(time.time())
            conn.recv(65536)
            if first:
                first = False
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000:
                    if stop.wait(0.3):
                        break
                    try:
                        conn.sendall(bytes([byte]))
                    except OSError:
                        break
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        destination = add_destination(
            name="trickle",
            kind="http",
            url=f"http://127.0.0.1:{server.getsockname()[1]}",
            namespaces=[namespace],
        )
        service.send(in_ns(namespace))
        wait_until(lambda: len(connections) >= 2, timeout=15, what="a retry after the trickle was cut off")
        # Cut off by the total timeout (request 2 s + connect 1 s in tests), not by a read
        # timeout: each byte comes within 0.3 s. (Unbounded, the answer would take 5 min.)
        assert connections[1] - connections[0] >= 2.5
        status = wait_until(
            lambda: (s := service.destination(destination["id"])["status"])["delivered_total"] and s,
            what="delivered on the retry",
        )
        assert status["state"] == "healthy"
        history = service_history(service, destination["id"])
        assert any(
            "no complete answer" in (d["error"] or "") or "timed out" in (d["error"] or "") for d in history
        )
    finally:
        stop.set()
        server.close()


def service_history(service: Service, destination_id: str) -> list[dict[str, Any]]:
    with service.admin() as client:
        return client.get(f"/api/v1/destinations/{destination_id}/deliveries").json()["deliveries"]


def test_sumo_logic_requests_carry_the_verification_token_and_custom_headers(
    service: Service, add_destination: AddDestination, sumo: SumoReceiver, namespace: str
) -> None:
    destination = add_destination(
        name="sumo-headers",
        kind="sumo_logic",
        url=sumo.url + "/receiver/v1/http/HEADERCODE987654",
        headers=[
            {"name": "X-Team", "value": "security"},
            {"name": "X-Api-Key", "value": "sumo-key-123456", "secret": True},
        ],
        namespaces=[namespace],
    )
    event = in_ns(namespace)
    service.send(event)
    wait_until(lambda: sumo.events(), what="the event at Sumo")
    assert sumo.events() == [event]
    request = sumo.requests[0]
    assert request.header("x-auditrelay-streaming-token") == destination["verification_token"]
    assert request.header("x-team") == "security"
    assert request.header("x-api-key") == "sumo-key-123456"


def test_a_longer_linger_gathers_a_burst_sent_one_event_per_request_into_fewer_requests(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    """The first event after a quiet spell goes at once; the events right behind it wait out
    the linger, counted from that request, and go together."""
    linger_ms = 1000
    add_destination(
        name="linger",
        kind="http",
        url=receiver.url,
        namespaces=[namespace],
        options={"batch_format": "json_array"},
        batch={"max_events": 100, "linger_ms": linger_ms},
    )
    burst = [in_ns(namespace, action=f"burst.n{i}") for i in range(20)]
    started = time.time()
    with service.ingest() as client:
        for event in burst:  # one event per request
            response = client.post("/api/v1/events", json=event)
            assert response.status_code == 202, response.text
    all_stored = time.time()
    wait_until(lambda: len(receiver.events()) >= len(burst), what="the burst")
    assert receiver.events() == burst
    assert len(receiver.requests) < len(burst), [len(json.loads(r.body)) for r in receiver.requests]
    # The first event did not wait for the linger (the rest of the burst was still coming)...
    assert receiver.requests[0].at < all_stored
    # ...and the next request waited it out after the first.
    assert receiver.requests[1].at - started >= linger_ms / 1000


def test_a_destination_down_then_back_gets_every_event_in_order_and_turns_healthy(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.answer_with(503, {"Content-Type": "text/plain"}, b"down for maintenance")
    destination = add_destination(
        name="down", kind="http", url=receiver.url, namespaces=[namespace], delivery=ORDERED
    )
    events = [in_ns(namespace, action=f"outage.n{i}") for i in range(12)]
    service.send(events[:4])
    failing = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["consecutive_failures"] >= 3 and s,
        what="three failed attempts",
    )
    assert failing["state"] == "failing" and failing["last_error"]["status"] == 503
    assert "down for maintenance" in failing["last_error"]["message"]
    for start in (4, 8):  # more events while it is down
        service.send(events[start : start + 4])
    wait_until(lambda: service.destination(destination["id"])["status"]["lag"] >= 12, what="all 12 owed")
    assert receiver.events() == []
    receiver.answer_normally()
    marker = in_ns(namespace, action="marker.end")
    service.send(marker)
    wait_until(lambda: marker in receiver.events(), timeout=15, what="every event after the outage")
    assert receiver.events() == [*events, marker], "every event, once, in order"
    healthy = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["state"] == "healthy" and s,
        what="the destination healthy again",
    )
    assert healthy["consecutive_failures"] == 0 and healthy["lag"] == 0
    assert healthy["delivered_total"] == len(events) + 1


def test_lag_seconds_grows_while_a_paused_destination_owes_events_and_is_0_when_caught_up(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(name="lagging", kind="http", url=receiver.url, namespaces=[namespace])
    first = in_ns(namespace)
    service.send(first)
    caught_up = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["lag"] == 0 and s, what="caught up"
    )
    assert caught_up["lag_seconds"] == 0
    with service.admin() as client:
        response = client.post(f"/api/v1/destinations/{destination['id']}/pause")
    assert response.status_code == 200, response.text
    service.send(in_ns(namespace))
    stored_by = time.time()
    # Owed and growing: at least as old as the event it owes, by the status's own clock.
    status = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["lag_seconds"] >= 0.5 and s,
        what="lag_seconds to grow",
    )
    asked = time.time()
    again = service.destination(destination["id"])["status"]
    assert status["lag"] >= 1 and again["lag_seconds"] >= asked - stored_by - 0.001
    assert again["lag_seconds"] >= status["lag_seconds"]
    with service.admin() as client:
        response = client.post(f"/api/v1/destinations/{destination['id']}/resume")
    assert response.status_code == 200, response.text
    caught_up = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["lag"] == 0 and s, what="caught up"
    )
    assert caught_up["lag_seconds"] == 0


def test_a_new_destination_is_pending_until_it_delivers_and_a_resume_keeps_what_it_was(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(name="new", kind="http", url=receiver.url, namespaces=[namespace])
    path = f"/api/v1/destinations/{destination['id']}"
    assert destination["status"]["state"] == "pending"
    with service.admin() as client:
        # Paused and resumed before delivering anything: pending again, not healthy.
        assert client.post(path + "/pause").json()["status"]["state"] == "paused"
        assert client.post(path + "/resume").json()["status"]["state"] == "pending"
    service.send(in_ns(namespace))
    wait_until(lambda: service.destination(destination["id"])["status"]["state"] == "healthy", what="healthy")
    with service.admin() as client:
        assert client.patch(path, json={"active": False}).json()["status"]["state"] == "paused"
        # Resumed by PATCH too: it has delivered, so healthy (it used to read "paused").
        assert client.patch(path, json={"active": True}).json()["status"]["state"] == "healthy"
