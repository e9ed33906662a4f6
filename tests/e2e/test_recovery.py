"""Poison events, dead letters, attempt history and replay."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.support import HecReceiver, Received, Receiver, Reply, Service, in_ns, make_event, wait_until

AddDestination = Callable[..., dict[str, Any]]


class PickyHec(HecReceiver):
    """HEC that refuses, as a whole batch, any request holding an event marked poison, until
    `picky` is set to False (the SIEM is fixed)."""

    picky = True

    def respond(self, request: Received) -> Reply:
        if self.picky and b'"poison"' in request.body:
            return self._answer(400, "Invalid data format", 6)
        return super().respond(request)


class RefusesMarked(Receiver):
    """A SIEM that refuses, with `status` and `body`, any request whose body holds `marker`."""

    def __init__(self, marker: bytes, status: int, body: bytes) -> None:
        self.marker, self.status, self.body = marker, status, body
        super().__init__()

    def respond(self, request: Received) -> Reply | str:
        if self.marker in request.body:
            return self.status, {}, self.body
        return super().respond(request)


def get(service: Service, path: str) -> Any:
    with service.admin() as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_poison_event_is_isolated_dead_lettered_and_the_stream_goes_on(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    hec = PickyHec()
    try:
        destination = add_destination(
            name="picky",
            kind="splunk_hec",
            url=hec.url,
            token=hec.token,
            namespaces=[namespace],
            delivery={"ordered": True},  # the marker below relies on log order
        )
        before = [in_ns(namespace) for _ in range(10)]
        poison = in_ns(namespace, details={"kind": "poison"})
        after = [in_ns(namespace) for _ in range(10)]
        service.send([*before, poison, *after])
        # In order: once a last marker event arrives, everything before it has.
        marker = in_ns(namespace, action="marker.end")
        service.send(marker)
        wait_until(lambda: marker in hec.events(), timeout=20, what="the 20 good events and the marker")
        assert hec.events() == [*before, *after, marker], "every good event, in order, not the poison one"
        letters = get(service, f"/api/v1/destinations/{destination['id']}/dead-letters")
        assert letters["total"] == 1
        letter = letters["dead_letters"][0]
        assert letter["event_id"] == poison["id"] and letter["event"] == poison
        assert letter["status"] == 400 and "HEC code 6" in letter["error"] and letter["attempts"] == 3
        status = service.destination(destination["id"])["status"]
        assert status["dead_letters"] == 1
        wait_until(lambda: service.destination(destination["id"])["status"]["lag"] == 0, what="lag 0")
        history = get(service, f"/api/v1/destinations/{destination['id']}/deliveries")["deliveries"]
        outcomes = {d["outcome"] for d in history}
        assert {"delivered", "rejected"} <= outcomes
        assert all({"at", "events", "bytes", "status", "latency_ms", "error"} <= set(d) for d in history)

        # The SIEM is fixed: re-sending the dead letter delivers it and empties the list.
        hec.picky = False
        with service.admin() as client:
            result = client.post(f"/api/v1/destinations/{destination['id']}/dead-letters/resend").json()
        assert result["remaining"] == 0 and result["results"][0]["delivered"] is True
        assert hec.events()[-1] == poison
    finally:
        hec.close()


def test_dead_letters_can_be_discarded(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    receiver = RefusesMarked(b"reject-me", 422, b"schema mismatch")
    try:
        destination = add_destination(name="d", kind="http", url=receiver.url, namespaces=[namespace])
        service.send([in_ns(namespace, details="reject-me"), in_ns(namespace)])
        wait_until(
            lambda: get(service, f"/api/v1/destinations/{destination['id']}/dead-letters")["total"] == 1,
            timeout=15,
            what="a dead letter",
        )
        letter = get(service, f"/api/v1/destinations/{destination['id']}/dead-letters")["dead_letters"][0]
        assert "schema mismatch" in letter["error"]
        with service.admin() as client:
            path = f"/api/v1/destinations/{destination['id']}/dead-letters/{letter['id']}"
            assert client.delete(path).status_code == 204
            assert client.delete(path).status_code == 404
        assert get(service, f"/api/v1/destinations/{destination['id']}/dead-letters")["total"] == 0
    finally:
        receiver.close()


def test_a_destination_refusing_everything_holds_the_stream_instead_of_dead_lettering_it_all(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.answer_with(404, body=b"no such path")
    destination = add_destination(name="wrong-path", kind="http", url=receiver.url, namespaces=[namespace])
    events = [in_ns(namespace) for _ in range(12)]
    service.send(events)
    status = wait_until(
        lambda: (
            (s := service.destination(destination["id"])["status"])["state"] == "held"
            and "holding the stream" in (s["last_error"] or {}).get("message", "")
            and s
        ),
        timeout=20,
        what="the breaker to hold the stream",
    )
    assert status["dead_letters"] == 5
    receiver.answer_normally()
    wait_until(lambda: len(receiver.events()) >= 7, timeout=15, what="the rest after the fix")
    # The seven not set aside, each once (the requests of a window may come in any order).
    assert sorted(e["id"] for e in receiver.events()) == sorted(e["id"] for e in events[5:])


def test_replay_by_sequence_and_by_time_resends_without_moving_the_live_cursor(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(name="r", kind="http", url=receiver.url, namespaces=[namespace])
    first = [in_ns(namespace) for _ in range(5)]
    service.send(first)
    wait_until(lambda: len(receiver.events()) >= 5, what="first five")
    # Caught up: the live cursor is at the head of the log.
    before = wait_until(
        lambda: (s := service.destination(destination["id"])["status"])["lag"] == 0 and s, what="lag 0"
    )
    with service.admin() as client:
        # Page through to find our events' sequence numbers.
        seqs = {}
        after = 0
        while True:
            page = client.get("/api/v1/events", params={"after": after, "limit": 1000}).json()
            for item in page["events"]:
                seqs[item["event"]["id"]] = item["seq"]
            if not page["events"]:
                break
            after = page["next_after"]
        response = client.post(
            f"/api/v1/destinations/{destination['id']}/replay",
            json={"from_seq": seqs[first[1]["id"]], "to_seq": seqs[first[3]["id"]]},
        )
        assert response.status_code == 202, response.text
        job = response.json()
    wait_until(lambda: len(receiver.events()) >= 8, what="three replayed events")
    assert receiver.events()[5:] == first[1:4]
    replays = get(service, f"/api/v1/destinations/{destination['id']}/replays")["replays"]
    done = wait_until(
        lambda: (
            (r := get(service, f"/api/v1/destinations/{destination['id']}/replays")["replays"][0])["state"]
            == "done"
            and r
        ),
        what="replay done",
    )
    assert done["id"] == job["id"] and done["delivered"] == 3 and done["progress"] == 1.0 and replays
    # The live cursor did not move back, nor forward past anything but the one event stored
    # since, the replay's own audit event (of no namespace of ours).
    since = get(service, f"/api/v1/events?after={before['cursor']}&limit=1000")["events"]
    assert [item["event"]["action"] for item in since] == ["audit_stream.destination.replay"]
    wait_until(
        lambda: service.destination(destination["id"])["status"]["cursor"] == since[0]["seq"],
        what="the live cursor just past the replay's audit event",
    )
    assert len(receiver.events()) == 8, "the replay re-sent nothing live"
    # Live events keep flowing after a replay.
    live = in_ns(namespace)
    service.send(live)
    wait_until(lambda: receiver.events()[-1] == live, what="live event after replay")
    # By time: everything stored from a minute ago replays again (filters still apply).
    with service.admin() as client:
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
        response = client.post(f"/api/v1/destinations/{destination['id']}/replay", json={"from_time": since})
        assert response.status_code == 202, response.text
    wait_until(lambda: len(receiver.events()) >= 9 + 6, what="time replay")
    assert receiver.events()[9:15] == [*first, live]


def test_bad_replay_and_resend_requests(
    service: Service, add_destination: AddDestination, receiver: Receiver
) -> None:
    destination = add_destination(name="b", kind="http", url=receiver.url, event_types=["never.*"])
    path = f"/api/v1/destinations/{destination['id']}"
    with service.admin() as client:
        assert client.post(path + "/replay", json={}).status_code == 422
        assert (
            client.post(
                path + "/replay", json={"from_seq": 3, "from_time": "2024-01-01T00:00:00Z"}
            ).status_code
            == 422
        )
        assert client.post(path + "/replay", json={"from_seq": 10**12}).status_code == 422
        assert client.post(path + "/replay", json={"from_seq": 5, "to_seq": 2}).status_code == 422
        assert client.post(path + "/replay", json={"from_time": "2024-01-01T00:00:00"}).status_code == 422
        assert client.post(path + "/replay", json={"from_seq": "x"}).status_code == 422
        assert client.post(path + "/dead-letters/resend", json={"ids": ["a"]}).status_code == 422
        assert client.post("/api/v1/destinations/nope/replay", json={"from_seq": 1}).status_code == 404
        assert client.get("/api/v1/destinations/nope/deliveries").status_code == 404
        assert client.get(path + "/deliveries", params={"limit": 1000}).status_code == 422


class RefusesDuplicates(Receiver):
    """A SIEM that answers 409 to an id it has already accepted."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        super().__init__()

    def respond(self, request: Received) -> Reply:
        import json

        event_id = json.loads(request.body)["id"]
        if event_id in self.seen:
            return 409, {}, b"duplicate"
        self.seen.add(event_id)
        return 200, {}, b""


def test_a_replay_refused_as_duplicates_never_dead_letters_or_holds_the_live_stream(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    receiver = RefusesDuplicates()
    try:
        destination = add_destination(name="dups", kind="http", url=receiver.url, namespaces=[namespace])
        first = [in_ns(namespace) for _ in range(8)]
        service.send(first)
        wait_until(lambda: len(receiver.events()) >= 8, what="first eight")
        with service.admin() as client:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
            assert (
                client.post(
                    f"/api/v1/destinations/{destination['id']}/replay", json={"from_time": since}
                ).status_code
                == 202
            )
        wait_until(
            lambda: (
                get(service, f"/api/v1/destinations/{destination['id']}/replays")["replays"][0]["state"]
                == "done"
            ),
            timeout=20,
            what="replay done",
        )
        live = in_ns(namespace)
        service.send(live)
        wait_until(lambda: receiver.events()[-1] == live, what="live event after the refused replay")
        status = service.destination(destination["id"])["status"]
        assert status["dead_letters"] == 0 and status["state"] == "healthy"
        refused = [
            d
            for d in get(service, f"/api/v1/destinations/{destination['id']}/deliveries?limit=200")[
                "deliveries"
            ]
            if d["replay"]
        ]
        assert refused and all(d["status"] == 409 for d in refused)
    finally:
        receiver.close()


def test_a_run_of_poison_longer_than_the_breaker_does_not_stop_the_stream_for_good(
    fresh_service: Service,
) -> None:
    # One refusal sets an event aside and three in a row hold the stream: the rules of the
    # defaults (three refusals, five in a row), reached in a fraction of the time.
    fresh_service.extra_env.update(
        {
            "AUDITRELAY_BREAKER_HOLD_SECONDS": "1",
            "AUDITRELAY_REJECTIONS_BEFORE_DEAD_LETTER": "1",
            "AUDITRELAY_DEAD_LETTERS_BEFORE_HOLD": "3",
        }
    )
    service = fresh_service.start()
    receiver = RefusesMarked(b'"poison"', 400, b"bad event")
    try:
        destination = service.add_destination(
            name="p", kind="http", url=receiver.url, event_types=["document.*"]
        )
        poison = [make_event(details="poison") for _ in range(7)]
        good = [make_event() for _ in range(3)]
        service.send([*poison, *good])
        wait_until(
            lambda: len(receiver.events()) >= 3, timeout=30, what="the good events after the poison run"
        )
        assert receiver.events() == good
        letters = get(service, f"/api/v1/destinations/{destination['id']}/dead-letters")
        assert {d["event_id"] for d in letters["dead_letters"]} == {e["id"] for e in poison}
    finally:
        receiver.close()


def seq_of(service: Service, event_id: str) -> int:
    """The sequence number of a stored event."""
    after = 0
    while True:
        page = get(service, f"/api/v1/events?after={after}&limit=1000")
        for item in page["events"]:
            if item["event"]["id"] == event_id:
                return int(item["seq"])
        assert page["events"], f"event {event_id} is not stored"
        after = page["next_after"]


def audit_events_of(service: Service, destination_id: str) -> list[dict[str, Any]]:
    """The admins' audit events (`audit_stream.*`) about one destination, in log order (the
    delivery's own `health` events left out)."""
    found, after = [], 0
    while True:
        page = get(service, f"/api/v1/events?action=audit_stream.*&after={after}&limit=1000")
        if not page["events"]:
            return found
        found += [
            i["event"]
            for i in page["events"]
            if i["event"]["entity"]["id"] == destination_id
            and i["event"]["action"] != "audit_stream.destination.health"
        ]
        after = page["next_after"]


def test_replay_resend_and_discard_are_audit_events_with_their_details(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    receiver = RefusesMarked(b"reject-me", 422, b"schema mismatch")
    try:
        destination = add_destination(name="audited", kind="http", url=receiver.url, namespaces=[namespace])
        path = f"/api/v1/destinations/{destination['id']}"
        refused = [in_ns(namespace, details=f"reject-me {n}") for n in range(2)]
        good = in_ns(namespace)
        service.send([*refused, good])
        wait_until(
            lambda: get(service, path + "/dead-letters")["total"] == 2, timeout=20, what="two dead letters"
        )
        letters = get(service, path + "/dead-letters")["dead_letters"]
        assert [d["event_id"] for d in letters] == [e["id"] for e in refused]
        # The last error says the event was set aside, not only that it was refused.
        last_error = get(service, path)["status"]["last_error"]["message"]
        set_aside = f"event {refused[1]['id']} (seq {letters[1]['seq']}) refused 3 times and set aside"
        assert last_error.startswith(set_aside + " as a dead letter"), last_error
        with service.admin() as client:
            # Re-send the first one (still refused: it stays), discard the second.
            response = client.post(path + "/dead-letters/resend", json={"ids": [letters[0]["id"]]})
            assert response.status_code == 200, response.text
            assert response.json()["remaining"] == 2
            assert [r["delivered"] for r in response.json()["results"]] == [False]
            response = client.delete(f"{path}/dead-letters/{letters[1]['id']}")
            assert response.status_code == 204, response.text
            # An id that is not there: 404, and nothing re-sent or audited.
            response = client.post(path + "/dead-letters/resend", json={"ids": [letters[0]["id"], 999_999]})
            assert response.status_code == 404, response.text
            assert "999999" in response.json()["detail"]
            at = seq_of(service, good["id"])
            response = client.post(path + "/replay", json={"from_seq": at, "to_seq": at})
            assert response.status_code == 202, response.text
        mine = audit_events_of(service, destination["id"])
        assert [e["action"] for e in mine] == [
            "audit_stream.destination.create",
            "audit_stream.destination.dead_letter.resend",
            "audit_stream.destination.dead_letter.discard",
            "audit_stream.destination.replay",
        ]
        resend, discard, replay = mine[1:]
        about = {"id": destination["id"], "name": "audited", "kind": "http"}
        assert resend["details"] == {
            "destination": about,
            "resent": 1,
            "delivered": 0,
            "events": [
                {"dead_letter_id": letters[0]["id"], "event_id": refused[0]["id"], "seq": letters[0]["seq"]}
            ],
        }
        assert discard["details"] == {
            "destination": about,
            "dead_letter_id": letters[1]["id"],
            "event_id": refused[1]["id"],
            "seq": letters[1]["seq"],
        }
        assert replay["details"] == {"destination": about, "from_seq": at, "to_seq": at}
        for event in (resend, discard, replay):
            assert event["entity"]["type"] == "audit_stream_destination"
            assert event["actor"]["type"] == "service" and event["actor"]["token"]["name"]
    finally:
        receiver.close()


def test_the_attempt_history_is_newest_first(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    receiver.script = [(500, {}, b"first failure"), (503, {}, b"second failure")]
    destination = add_destination(name="history", kind="http", url=receiver.url, namespaces=[namespace])
    path = f"/api/v1/destinations/{destination['id']}/deliveries"
    service.send(in_ns(namespace))
    wait_until(lambda: receiver.events(), what="delivery after two failures")
    later = in_ns(namespace)
    service.send(later)
    wait_until(lambda: len(get(service, path)["deliveries"]) >= 4, what="four attempts recorded")
    history = get(service, path)["deliveries"]
    assert [d["status"] for d in history] == [200, 200, 503, 500]
    assert [d["outcome"] for d in history] == ["delivered", "delivered", "retry", "retry"]
    assert "second failure" in history[2]["error"] and "first failure" in history[3]["error"]
    stamps = [d["at"] for d in history]
    assert stamps == sorted(stamps, reverse=True)
    assert [d["status"] for d in get(service, path + "?limit=2")["deliveries"]] == [200, 200]


def test_a_hold_survives_a_restart_and_a_rename_and_ends_when_the_url_changes(
    fresh_service: Service, namespace: str
) -> None:
    """Before, any edit or restart reset the breaker: a misconfigured destination set aside
    another run of events each time. Now only a change of where or how events are sent ends it."""
    wrong = Receiver()
    right = Receiver()
    wrong.answer_with(404, body=b"no such path")
    # A hold after two dead letters of one refusal each: the same rules, reached in seconds.
    fresh_service.extra_env.update(
        {"AUDITRELAY_DEAD_LETTERS_BEFORE_HOLD": "2", "AUDITRELAY_REJECTIONS_BEFORE_DEAD_LETTER": "1"}
    )
    service = fresh_service.start()
    try:
        destination = service.add_destination(
            name="wrong-path", kind="http", url=wrong.url, namespaces=[namespace]
        )
        path = f"/api/v1/destinations/{destination['id']}"
        events = [in_ns(namespace) for _ in range(6)]
        service.send(events)

        def held() -> dict[str, Any] | bool:
            s = service.destination(destination["id"])["status"]
            return "holding the stream" in (s["last_error"] or {}).get("message", "") and s

        assert wait_until(held, timeout=20, what="the breaker to hold the stream")["dead_letters"] == 2
        service.stop()
        service.start()
        refused_before = len(wrong.arrivals)
        wait_until(
            lambda: len(wrong.arrivals) > refused_before + 1, timeout=20, what="attempts after the restart"
        )
        assert held() and service.destination(destination["id"])["status"]["dead_letters"] == 2
        with service.admin() as client:
            renamed = client.patch(path, json={"name": "still wrong"})
            assert renamed.status_code == 200, renamed.text
        refused_before = len(wrong.arrivals)
        wait_until(
            lambda: len(wrong.arrivals) > refused_before + 1, timeout=20, what="attempts after the rename"
        )
        assert service.destination(destination["id"])["status"]["dead_letters"] == 2, "a rename ends no hold"
        with service.admin() as client:
            moved = client.patch(path, json={"url": right.url})
            assert moved.status_code == 200, moved.text
        wait_until(lambda: len(right.events()) >= 4, timeout=20, what="the rest at the new URL")
        assert [e["id"] for e in right.events()] == [e["id"] for e in events[2:]]
        assert service.destination(destination["id"])["status"]["dead_letters"] == 2
    finally:
        wrong.close()
        right.close()


#: Retry-After values that are not delta-seconds nor an HTTP date: ignored, never a crash.
#: "²" is a digit to str.isdigit() but not to int(); sent as UTF-8 (the receiver writes
#: header values as Latin-1), and "\xb2" as the one Latin-1 byte.
ODD_RETRY_AFTER = [
    *(v.encode().decode("latin-1") for v in ("²", "١٢", "1.5", "-1", "12 s", "Sun, 06 Nov 1994", "+3")),
    "\xb2",
]


def test_an_odd_retry_after_is_ignored_by_test_resend_and_the_loop(
    service: Service, add_destination: AddDestination, namespace: str
) -> None:
    siem = RefusesMarked(b'"poison"', 400, b"no")
    try:
        destination = add_destination(
            name="odd-retry-after",
            kind="http",
            url=siem.url,
            namespaces=[namespace],
            delivery={"ordered": True},
        )
        path = f"/api/v1/destinations/{destination['id']}"
        poison = in_ns(namespace, details={"kind": "poison"})
        service.send(poison)
        wait_until(
            lambda: get(service, path + "/dead-letters")["total"] == 1, timeout=20, what="a dead letter"
        )
        with service.admin() as client:
            for value in ODD_RETRY_AFTER:
                siem.answer_with(503, {"Retry-After": value}, b"busy")
                response = client.post(path + "/test")
                assert response.status_code == 200, (value, response.text)
                assert response.json()["outcome"] == "retry" and response.json()["status_code"] == 503
                response = client.post(path + "/dead-letters/resend")
                assert response.status_code == 200, (value, response.text)
                assert response.json()["remaining"] == 1
                assert response.json()["results"][0]["status"] == 503
        # The loop itself reads the same answers: it retries, and delivers once answered normally.
        siem.answer_with(503, {"Retry-After": ODD_RETRY_AFTER[0]}, b"busy")
        event = in_ns(namespace)
        service.send(event)
        wait_until(lambda: len(siem.arrivals) >= 2 * len(ODD_RETRY_AFTER) + 3, timeout=20, what="a retry")
        siem.answer_normally()
        wait_until(lambda: event in siem.events(), timeout=30, what="the event after the odd Retry-After")
    finally:
        siem.close()
