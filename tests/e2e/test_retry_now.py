"""Recovery without waiting out the backoff: "Retry now" and an accepted test send wake the
destination's loop at once, in whichever process delivers."""

from __future__ import annotations

from tests.support import Receiver, Service, in_ns, wait_until

#: A backoff far longer than the waits below: only a wake-up can explain a prompt delivery.
SLOW_BACKOFF = {"AUDITRELAY_RETRY_INITIAL_SECONDS": "120", "AUDITRELAY_RETRY_MAX_SECONDS": "120"}


def _failing_then_fixed(service: Service, receiver: Receiver, namespace: str) -> str:
    receiver.answer_with(503, body=b"down for maintenance")
    destination = service.add_destination(name="down", kind="http", url=receiver.url, namespaces=[namespace])
    service.send(in_ns(namespace))
    wait_until(
        lambda: service.destination(destination["id"])["status"]["consecutive_failures"] >= 1,
        what="the first failure",
    )
    receiver.answer_normally()
    return str(destination["id"])


def test_retry_now_delivers_at_once_and_is_audited(
    fresh_service: Service, receiver: Receiver, namespace: str
) -> None:
    fresh_service.extra_env.update(SLOW_BACKOFF)
    service = fresh_service.start()
    destination_id = _failing_then_fixed(service, receiver, namespace)
    status = service.destination(destination_id)["status"]
    assert status["state"] == "failing" and status["next_retry_at"] is not None
    with service.admin() as admin:
        answer = admin.post(f"/api/v1/destinations/{destination_id}/retry")
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == destination_id
        missing = admin.post("/api/v1/destinations/00000000-0000-0000-0000-000000000000/retry")
        assert missing.status_code == 404
    wait_until(lambda: receiver.events(), timeout=20, what="the event, well before the 120 s backoff")
    wait_until(lambda: service.destination(destination_id)["status"]["state"] == "healthy", what="healthy")
    with service.admin() as admin:
        audit = admin.get("/api/v1/events", params={"action": "audit_stream.destination.retry"}).json()
    (event,) = [e["event"] for e in audit["events"]]
    assert event["details"]["destination"]["id"] == destination_id
    assert event["actor"]["token"]["name"] == "initial admin token"


def test_an_accepted_test_send_wakes_a_waiting_loop(
    fresh_service: Service, receiver: Receiver, namespace: str
) -> None:
    fresh_service.extra_env.update(SLOW_BACKOFF)
    service = fresh_service.start()
    destination_id = _failing_then_fixed(service, receiver, namespace)
    with service.admin() as admin:
        tested = admin.post(f"/api/v1/destinations/{destination_id}/test")
    assert tested.status_code == 200 and tested.json()["delivered"] is True, tested.text
    wait_until(
        lambda: [e for e in receiver.events() if e["action"] != "audit_stream.destination.test"],
        timeout=20,
        what="the stored event after the test send",
    )
