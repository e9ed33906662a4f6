"""Fault tests: the service as a real process, killed with SIGKILL at random points, with
destinations that fail, hang, refuse single events and come back. At the end every
accepted event is at every destination, duplicates only from batches in flight."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from typing import Any

import httpx

from tests.support import HecReceiver, Received, Receiver, Reply, Service, make_event, wait_until

KILLS = 5


class Ingester(threading.Thread):
    """Sends batches until stopped; remembers exactly which events were answered 202."""

    def __init__(self, service: Service, batch: int = 20, poison_every: int = 0, pause: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.service, self.batch, self.poison_every, self.pause = service, batch, poison_every, pause
        self.accepted: list[dict[str, Any]] = []
        self.halt = threading.Event()
        self.sent = 0

    def run(self) -> None:
        with httpx.Client(
            headers={"Authorization": f"Bearer {self.service.ingest_token}"}, timeout=5
        ) as client:
            while not self.halt.is_set():
                events = []
                for _ in range(self.batch):
                    self.sent += 1
                    poison = self.poison_every and self.sent % self.poison_every == 0
                    events.append(
                        make_event(action="fault.test", details="poison" if poison else {"n": self.sent})
                    )
                try:
                    response = client.post(self.service.base_url + "/api/v1/events", json=events)
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                if response.status_code == 202:
                    self.accepted.extend(events)
                time.sleep(self.pause)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)


def test_many_concurrent_ingesters_against_a_fast_destination_lose_nothing(
    service: Service, add_destination: Any
) -> None:
    receiver = Receiver()
    try:
        add_destination(
            name="fast",
            kind="http",
            url=receiver.url,
            event_types=["concurrent.*"],
            options={"batch_format": "ndjson"},
            batch={"linger_ms": 0},
        )
        ids: list[str] = []
        lock = threading.Lock()

        def ingest(worker: int) -> None:
            with httpx.Client(
                headers={"Authorization": f"Bearer {service.ingest_token}"}, timeout=10
            ) as client:
                for round_ in range(25):
                    events = [make_event(action=f"concurrent.w{worker}") for _ in range(8)]
                    response = client.post(service.base_url + "/api/v1/events", json=events)
                    assert response.status_code == 202
                    with lock:
                        ids.extend(e["id"] for e in events)
                    if round_ % 5 == 0:
                        time.sleep(0.001)

        threads = [threading.Thread(target=ingest, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(lambda: len(receiver.events()) >= len(ids), timeout=30, what="every concurrent event")
        received = [e["id"] for e in receiver.events()]
        assert sorted(received) == sorted(ids), "each event exactly once"
        # Per-destination order is log order: compare with the sequence numbers of the log.
        order: dict[str, int] = {}
        after = 0
        with service.admin() as client:
            while True:
                page = client.get(
                    "/api/v1/events", params={"after": after, "limit": 1000, "action": "concurrent.*"}
                )
                events = page.json()["events"]
                if not events:
                    break
                order.update({item["event"]["id"]: item["seq"] for item in events})
                after = page.json()["next_after"]
        seqs = [order[i] for i in received]
        assert seqs == sorted(seqs)
    finally:
        receiver.close()


class Flaky(Receiver):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        super().__init__()

    def respond(self, request: Received) -> Reply:
        return (500, {}, b"flaky") if self.rng.random() < 0.25 else (200, {}, b"")


class Hanging(Receiver):
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        super().__init__()

    def respond(self, request: Received) -> Reply | str:
        # Never answers (nothing recorded): only the service's timeout and retry deliver it.
        return "hang" if self.rng.random() < 0.05 else (200, {}, b"")


class PoisonRefusing(HecReceiver):
    def respond(self, request: Received) -> Reply:
        if b'"poison"' in request.body:
            return self._answer(400, "Invalid data format", 6)
        return super().respond(request)


class ComesBack(Receiver):
    def __init__(self) -> None:
        self.up = False
        super().__init__()

    def respond(self, request: Received) -> Reply:
        return (200, {}, b"") if self.up else (503, {"Retry-After": "1"}, b"maintenance")


def test_repeated_kill_9_with_failing_hanging_refusing_and_returning_destinations(
    fresh_service: Service,
) -> None:
    rng = random.Random(8700)
    service = fresh_service.start()
    healthy, flaky, hanging = Receiver(), Flaky(rng), Hanging(rng)
    picky, returning = PoisonRefusing(), ComesBack()
    receivers = {
        "healthy": healthy,
        "flaky": flaky,
        "hanging": hanging,
        "picky": picky,
        "returning": returning,
    }
    try:
        ids = {}
        for name, receiver in receivers.items():
            settings: dict[str, Any] = {
                "name": name,
                "kind": "http",
                "url": receiver.url,
                "event_types": ["fault.*"],
            }
            if name == "picky":
                settings.update(
                    kind="splunk_hec", token=picky.token, batch={"max_events": 50, "linger_ms": 0}
                )
            if name in ("flaky", "hanging"):
                settings.update(options={"batch_format": "json_array"}, batch={"max_events": 10})
            ids[name] = service.add_destination(**settings)["id"]

        accepted: list[dict[str, Any]] = []
        for cycle in range(KILLS):
            if cycle:
                service.start()
            ingester = Ingester(service, poison_every=37)
            ingester.start()
            time.sleep(rng.uniform(0.3, 1.2))
            service.stop(signal.SIGKILL)
            ingester.stop()
            accepted.extend(ingester.accepted)
        returning.up = True
        service.start()

        expected = {e["id"] for e in accepted}
        poison = {e["id"] for e in accepted if e["details"] == "poison"}
        assert len(expected) > 100 and poison

        def received(receiver: Receiver) -> list[str]:
            return [e["id"] for e in receiver.events()]

        for name, receiver in receivers.items():
            want = expected - poison if name == "picky" else expected
            try:
                wait_until(
                    lambda r=receiver, w=want: w <= set(received(r)),
                    timeout=90,
                    interval=0.2,
                    what=f"every accepted event at {name}",
                )
            except AssertionError:
                missing = want - set(received(receiver))
                with service.admin() as client:
                    status = client.get(f"/api/v1/destinations/{ids[name]}").json()["status"]
                    head = client.get("/api/v1/events", params={"limit": 1}).json()["head"]
                raise AssertionError(
                    f"{name}: {len(missing)} missing of {len(want)}; status {status}; head {head}; "
                    f"log: {service.log()[-3000:]}"
                ) from None
        # The refused events are set aside as dead letters, nothing else.
        with service.admin() as client:
            letters = client.get(
                f"/api/v1/destinations/{ids['picky']}/dead-letters", params={"limit": 500}
            ).json()
        assert poison <= {d["event_id"] for d in letters["dead_letters"]}
        assert not ({d["event_id"] for d in letters["dead_letters"]} & (expected - poison))
        # At least once: duplicates only from the batch in flight at each kill (a read
        # batch: 100 events for per-event http, 1,000 for batching destinations).
        for name, receiver in receivers.items():
            counts = Counter(received(receiver))
            duplicates = sum(n - 1 for n in counts.values() if n > 1)
            # Per-event destinations commit every 100 events; batching ones at least every
            # second, so a kill re-sends at most about a second of delivery (here ≤ 300).
            in_flight = 100 if name in ("healthy", "returning") else 300
            # Never a vacuous bound: at most half of everything may come twice.
            allowance = min(KILLS * in_flight, len(expected) // 2)
            assert duplicates <= allowance, (name, duplicates, allowance, len(expected))
    finally:
        for receiver in receivers.values():
            receiver.close()
