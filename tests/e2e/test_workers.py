"""Several processes on one store: all take events, exactly one delivers, and another takes
over when it dies. The service runs with two worker processes in every e2e test (see
`Service.env`); these tests aim at what is specific to that."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.conftest import Databases
from tests.support import Receiver, Service, alive, children_of, in_ns, wait_until

LEADER = re.compile(r"process (\d+) holds the delivery lock")


def leaders(service: Service) -> list[int]:
    """The pids that took the delivery lock, in order, from the service's log.

    `Service.send` opens a connection per request, so requests spread over the workers."""
    return [int(pid) for pid in LEADER.findall(service.log(whole=True))]


def test_every_process_takes_events_and_one_delivers_each_exactly_once(
    fresh_service: Service, receiver: Receiver, namespace: str
) -> None:
    # An hour's resync: delivery within the wait below is only possible if the other
    # process's commits are signalled.
    fresh_service.extra_env["AUDITRELAY_RESYNC_SECONDS"] = "3600"
    service = fresh_service.start()
    wait_until(lambda: len(children_of(service.pid)) >= 2, what="two worker processes")
    assert len(leaders(service)) == 1, service.log()
    service.add_destination(name="w", kind="http", url=receiver.url, namespaces=[namespace])
    events = [in_ns(namespace) for _ in range(120)]
    for start in range(0, 120, 4):
        service.send(events[start : start + 4])
    sent = [e["id"] for e in events]
    wait_until(lambda: set(sent) <= {e["id"] for e in receiver.events()}, timeout=30, what="all 120 events")
    time.sleep(0.5)  # a duplicate would come now
    assert sorted(e["id"] for e in receiver.events()) == sorted(sent), "once each"
    with service.admin() as admin:
        metrics = admin.get("/metrics").text
    ingested = re.search(r"^auditrelay_events_ingested_total (\S+)$", metrics, re.M)
    assert ingested and float(ingested.group(1)) >= 120, "counters add up over the processes"


def test_a_pause_answered_by_any_process_stops_delivery(
    fresh_service: Service, receiver: Receiver, namespace: str
) -> None:
    # No resync to fall back on: the pause must be signalled to the delivering process.
    fresh_service.extra_env["AUDITRELAY_RESYNC_SECONDS"] = "3600"
    service = fresh_service.start()
    destination = service.add_destination(name="p", kind="http", url=receiver.url, namespaces=[namespace])
    headers = {"Authorization": f"Bearer {service.admin_token}"}
    witnesses: list[Receiver] = []
    try:
        for round_ in range(4):  # new connections each time: either process may answer
            response = httpx.post(
                f"{service.base_url}/api/v1/destinations/{destination['id']}/pause", headers=headers
            )
            assert response.status_code == 200, response.text
            # A witness destination created after the pause (over a new connection too):
            # once it delivers, the delivering process has seen the pause, since one pass
            # over the destinations starts the one and stops the other. It also takes the
            # round's event, so when it has that, the paused one would have had it too.
            witness = Receiver()
            witnesses.append(witness)
            service.add_destination(
                name=f"witness-{round_}", kind="http", url=witness.url, namespaces=[f"{namespace}-w{round_}"]
            )
            seen = in_ns(f"{namespace}-w{round_}", action="round.seen")
            service.send(seen)
            wait_until(lambda w=witness, e=seen: e in w.events(), what="the witness")  # type: ignore[misc]
            event = in_ns(namespace, action=f"round.n{round_}")
            echo = in_ns(f"{namespace}-w{round_}", action="round.echo")
            service.send([event, echo])
            wait_until(lambda w=witness, e=echo: e in w.events(), what="the witness's echo")  # type: ignore[misc]
            assert event not in receiver.events(), "paused, nothing sent"
            resuming = time.time()
            response = httpx.post(
                f"{service.base_url}/api/v1/destinations/{destination['id']}/resume", headers=headers
            )
            assert response.status_code == 200, response.text
            wait_until(lambda e=event: e in receiver.events(), what="delivery after resume")  # type: ignore[misc]
            arrival = next(r for r in receiver.requests if event["id"].encode() in r.body)
            assert arrival.at >= resuming, "delivered while paused"
    finally:
        for witness in witnesses:
            witness.close()


def test_when_the_delivering_process_dies_another_takes_over(
    fresh_service: Service, receiver: Receiver, namespace: str
) -> None:
    service = fresh_service.start()
    service.add_destination(name="f", kind="http", url=receiver.url, namespaces=[namespace])
    first = [in_ns(namespace) for _ in range(20)]
    service.send(first)
    wait_until(lambda: len(receiver.events()) >= 20, what="the first events")
    leader = leaders(service)[-1]
    os.kill(leader, signal.SIGKILL)
    # Events keep being taken while nobody delivers (by the other process, or a retry).
    later = [in_ns(namespace) for _ in range(20)]

    def sent(batch: list[dict[str, object]]) -> bool:
        try:
            service.send(batch)
        except (httpx.HTTPError, AssertionError):
            return False  # the connection landed on the dying process: again
        return True

    for start in range(0, 20, 5):
        wait_until(lambda b=later[start : start + 5]: sent(b), interval=0.1, what="a batch taken")  # type: ignore[misc]
    wait_until(lambda: len(leaders(service)) >= 2, timeout=10, what="a new delivering process")
    assert leaders(service)[-1] != leader
    wait_until(
        lambda: {e["id"] for e in receiver.events()} >= {e["id"] for e in first + later},
        timeout=15,
        what="every event after the takeover",
    )


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(fresh_service: Service) -> None:
    service = fresh_service.start()
    workers = wait_until(
        lambda: sorted(children_of(service.pid)) if len(children_of(service.pid)) == 2 else None
    )
    killed = next(pid for pid in workers if pid not in leaders(service))
    os.kill(killed, signal.SIGKILL)

    def replacement() -> int | None:
        now = children_of(service.pid)
        new = [pid for pid in now if pid not in workers]
        return new[0] if len(now) == 2 and killed not in now and new else None

    new = wait_until(replacement, timeout=10, what="a new worker in place of the one killed")
    ready = re.compile(rf"ready on \w+ \(process {new}\b")
    wait_until(lambda: ready.search(service.log(whole=True)), timeout=10, what="the new worker ready")
    for _ in range(8):  # a new connection each: whichever worker's socket takes it answers
        assert httpx.get(f"{service.base_url}/readyz", timeout=5).status_code == 200


def test_a_worker_that_stops_answering_is_killed_and_replaced(fresh_service: Service) -> None:
    """A worker whose event loop no longer answers the parent's pings (here: a stopped
    process; a blocked loop looks the same) is killed after the timeout and replaced."""
    fresh_service.extra_env["AUDITRELAY_WORKER_TIMEOUT_SECONDS"] = "3"  # the least allowed
    service = fresh_service.start()
    workers = wait_until(
        lambda: sorted(children_of(service.pid)) if len(children_of(service.pid)) == 2 else None
    )
    time.sleep(4.5)  # past the timeout, answering: a healthy worker is left alone
    assert sorted(children_of(service.pid)) == workers, service.log()
    hung = next(pid for pid in workers if pid not in leaders(service))
    os.kill(hung, signal.SIGSTOP)
    try:
        killed = re.compile(rf"worker {hung} has not answered for \d+ s")
        wait_until(lambda: killed.search(service.log(whole=True)), timeout=15, what="the hung worker killed")
        wait_until(lambda: not alive(hung), timeout=10, what="the hung worker gone")

        def replacement() -> int | None:
            now = children_of(service.pid)
            new = [pid for pid in now if pid not in workers]
            return new[0] if len(now) == 2 and new else None

        new = wait_until(replacement, timeout=10, what="a new worker in place of the hung one")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    ready = re.compile(rf"ready on \w+ \(process {new}\b")
    wait_until(lambda: ready.search(service.log(whole=True)), timeout=10, what="the new worker ready")
    for _ in range(8):  # a new connection each: whichever worker's socket takes it answers
        assert httpx.get(f"{service.base_url}/readyz", timeout=5).status_code == 200


def test_kill_9_of_the_parent_takes_its_workers_with_it(fresh_service: Service) -> None:
    service = fresh_service.start()
    assert service.process is not None
    workers = wait_until(lambda: children_of(service.pid), what="worker processes")
    service.stop(signal.SIGKILL)
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=10, what="the workers to die")
    # And the port is free for the next start.
    service.start()


def test_two_services_on_one_postgresql_database_deliver_each_event_once(
    databases: Databases, tmp_path: Path, receiver: Receiver, namespace: str
) -> None:
    url = databases.url("postgresql")
    key = Fernet.generate_key().decode()  # both must open each other's secrets
    common = {"AUDITRELAY_SECRET_KEY": key, "AUDITRELAY_WORKERS": "1"}
    one = Service(tmp_path / "one", url, extra_env=dict(common)).start()
    other = Service(
        tmp_path / "other", url, extra_env={**common, "AUDITRELAY_CREATE_INITIAL_TOKENS": "false"}
    )
    try:
        other.data_dir.mkdir(parents=True, exist_ok=True)
        for name in ("admin.token", "ingest.token"):
            (other.data_dir / name).write_text((one.data_dir / name).read_text())
        other.start()
        assert len(leaders(one)) + len(leaders(other)) == 1, "one delivery lock for the database"
        # Ordered: the marker below relies on log order.
        one.add_destination(
            name="two", kind="http", url=receiver.url, namespaces=[namespace], delivery={"ordered": True}
        )
        events = [in_ns(namespace) for _ in range(40)]
        for n, start in enumerate(range(0, 40, 5)):
            (one if n % 2 else other).send(events[start : start + 5])
        # In order: once a last marker event arrives, everything before it has.
        marker = in_ns(namespace, action="marker.end")
        one.send(marker)
        wait_until(lambda: marker in receiver.events(), timeout=10, what="all 40 events and the marker")
        received = [e["id"] for e in receiver.events()]
        assert sorted(received) == sorted(e["id"] for e in [*events, marker]), "each event once, from one"
        holder, survivor = (one, other) if leaders(one) else (other, one)
        holder.stop(signal.SIGKILL)
        wait_until(lambda: leaders(survivor), timeout=10, what="the survivor to take the lock")
        more = [in_ns(namespace) for _ in range(10)]
        survivor.send(more)
        wait_until(
            lambda: {e["id"] for e in receiver.events()} >= {e["id"] for e in more},
            timeout=10,
            what="delivery by the survivor",
        )
    finally:
        for service in (one, other):
            if service.process is not None and service.process.poll() is None:
                service.stop()
