"""Signed deliveries over real sockets, verified as a receiver would: with the published
Standard Webhooks library (`standardwebhooks`), for every kind, across a retry (the same
`webhook-id`) and across a rotation of the secret (both verify during it, only the new one
after it)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support import HecReceiver, Received, Receiver, Service, SumoReceiver, in_ns, wait_until

AddDestination = Callable[..., dict[str, Any]]
ORDERED = {"ordered": True}


def verifies(secret: str, request: Received) -> bool:
    try:
        Webhook(secret).verify(request.body, request.headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


def check_signed(request: Received, destination: dict[str, Any], secret: str) -> None:
    """The request carries the verification token and a fresh, valid signature."""
    assert request.header("x-auditrelay-streaming-token") == destination["verification_token"]
    assert (request.header("webhook-id") or "").startswith("msg_")
    assert abs(int(request.header("webhook-timestamp") or 0) - time.time()) < 60
    assert verifies(secret, request), request.headers


def test_every_request_of_an_http_destination_is_signed_with_the_generated_secret(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="signed", kind="http", url=receiver.url, namespaces=[namespace], signing_secret="generate"
    )
    secret = destination["signing_secret"]
    assert secret.startswith("whsec_")
    assert service.destination(destination["id"])["signing_secret"] == "********" + secret[-4:]
    events = [in_ns(namespace, action=f"document.step{i}") for i in range(5)]
    service.send(events)
    wait_until(lambda: len(receiver.events()) >= 5, what="five signed events")
    for request in receiver.requests:
        check_signed(request, destination, secret)
        assert len((request.header("webhook-signature") or "").split(" ")) == 1
    assert len({r.header("webhook-id") for r in receiver.requests}) == 5
    # The bytes signed are the bytes sent: a changed body no longer verifies.
    tampered = receiver.requests[0]
    tampered.body = tampered.body.replace(b"document", b"documemt")
    assert not verifies(secret, tampered)

    # The test send is signed too.
    with service.admin() as client:
        result = client.post(f"/api/v1/destinations/{destination['id']}/test").json()
    assert result["delivered"], result
    check_signed(receiver.requests[-1], destination, secret)


def test_splunk_hec_and_sumo_logic_requests_are_signed_over_the_bytes_sent(
    service: Service, add_destination: AddDestination, hec: HecReceiver, sumo: SumoReceiver, namespace: str
) -> None:
    secret = "whsec_" + base64.b64encode(b"splunk-and-sumo-signing-key!").decode()
    splunk = add_destination(
        name="hec",
        kind="splunk_hec",
        url=hec.url,
        token=hec.token,
        namespaces=[namespace],
        signing_secret=secret,
    )
    add_destination(
        name="sumo",
        kind="sumo_logic",
        url=sumo.url + "/receiver/v1/http/abc",
        namespaces=[namespace],
        signing_secret=secret,
    )
    events = [in_ns(namespace, action=f"document.step{i}") for i in range(20)]
    service.send(events)
    wait_until(lambda: len(hec.events()) >= 20 and len(sumo.events()) >= 20, what="events at both")
    for request in hec.requests:
        check_signed(request, splunk, secret)
    # The Sumo body is gzip, which the library (decoding the body as text) cannot take:
    # the receiver's HMAC over the raw bytes, as the README says.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    for request in sumo.requests:
        signed = b"%s.%s.%s" % (
            (request.header("webhook-id") or "").encode(),
            (request.header("webhook-timestamp") or "").encode(),
            request.body,
        )
        expected = "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()
        assert request.header("webhook-signature") == expected
        assert gzip.decompress(request.body)


def test_a_retried_request_keeps_its_webhook_id_and_is_signed_again(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="retried", kind="http", url=receiver.url, namespaces=[namespace], signing_secret="generate"
    )
    receiver.script = [(503, {}, b"busy")]
    event = in_ns(namespace)
    service.send(event)
    wait_until(lambda: event in receiver.events(), what="the event, after one 503")
    first, accepted = receiver.failed[0], receiver.requests[0]
    assert first.header("webhook-id") == accepted.header("webhook-id")
    check_signed(first, destination, destination["signing_secret"])
    check_signed(accepted, destination, destination["signing_secret"])


def test_during_a_rotation_both_secrets_verify_and_after_it_only_the_new_one(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="rotating",
        kind="http",
        url=receiver.url,
        namespaces=[namespace],
        signing_secret="generate",
        delivery=ORDERED,
    )
    old = destination["signing_secret"]
    path = f"/api/v1/destinations/{destination['id']}"

    def deliver(action: str) -> Received:
        event = in_ns(namespace, action=action)
        service.send(event)
        wait_until(lambda: event in receiver.events(), what=action)
        return next(r for r in receiver.requests if json.loads(r.body) == event)

    def deliver_signed(action: str, signatures: int) -> Received:
        """An event delivered once the edit took effect (its loop restarts with the new
        secrets within a resync): the first delivery carrying `signatures` signatures."""
        found: list[Received] = []

        def signed_so() -> bool:
            request = deliver(f"{action}{len(found)}")
            found.append(request)
            return len((request.header("webhook-signature") or "").split(" ")) == signatures

        wait_until(signed_so, what=f"a request with {signatures} signature(s)")
        return found[-1]

    before = deliver("rotation.before")
    assert verifies(old, before)

    with service.admin() as client:
        rotated = client.patch(path, json={"signing_secret": "generate"}).json()
    new = rotated["signing_secret"]
    assert new.startswith("whsec_") and new != old
    assert rotated["signing_secret_previous"] == "********" + old[-4:]
    during = deliver_signed("rotation.during", 2)
    assert verifies(old, during) and verifies(new, during)

    with service.admin() as client:
        ended = client.patch(path, json={"signing_secret_previous": None}).json()
    assert ended["signing_secret_previous"] is None
    after = deliver_signed("rotation.after", 1)
    assert verifies(new, after)
    assert not verifies(old, after)


def test_without_a_signing_secret_nothing_is_signed(
    service: Service, add_destination: AddDestination, receiver: Receiver, namespace: str
) -> None:
    add_destination(name="plain", kind="http", url=receiver.url, namespaces=[namespace])
    event = in_ns(namespace)
    service.send(event)
    wait_until(lambda: event in receiver.events(), what="the event")
    assert receiver.requests[0].header("webhook-signature") is None
    assert receiver.requests[0].header("webhook-id") is None
