"""TLS per destination against real HTTPS receivers on loopback, whose certificates a
throwaway CA (trustme) issues for 127.0.0.1: a CA bundle trusted, a CA that does not match
refused, mutual TLS with and without the client certificate, the lowest version enforced,
and verification turned off (with its warning). Each through the delivery loop and `/test`."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from tests.support import Receiver, Service, in_ns, wait_until

AddDestination = Callable[..., dict[str, Any]]

SERVER_CA = trustme.CA()
SERVER_CERT = SERVER_CA.issue_cert("127.0.0.1", "localhost")
CLIENT_CA = trustme.CA()
CLIENT = CLIENT_CA.issue_cert("relay.client.example")


def pem(blob: trustme.Blob) -> str:
    return blob.bytes().decode()


def https_receiver(
    *, client_ca: trustme.CA | None = None, max_version: ssl.TLSVersion | None = None
) -> Receiver:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    SERVER_CERT.configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    if max_version is not None:
        context.maximum_version = max_version
    return Receiver(ssl_context=context)


@pytest.fixture
def tls_receiver() -> Iterator[Receiver]:
    r = https_receiver()
    yield r
    r.close()


@pytest.fixture
def mtls_receiver() -> Iterator[Receiver]:
    r = https_receiver(client_ca=CLIENT_CA)
    yield r
    r.close()


@pytest.fixture
def tls12_receiver() -> Iterator[Receiver]:
    r = https_receiver(max_version=ssl.TLSVersion.TLSv1_2)
    yield r
    r.close()


def send_test(service: Service, destination: dict[str, Any]) -> dict[str, Any]:
    with service.admin() as client:
        response = client.post(f"/api/v1/destinations/{destination['id']}/test")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def delivered(service: Service, receiver: Receiver, namespace: str) -> None:
    event = in_ns(namespace)
    service.send(event)
    wait_until(lambda: event in receiver.events(), what="the event over TLS")


def refused(service: Service, destination: dict[str, Any], receiver: Receiver, namespace: str) -> str:
    """The event is not delivered; the destination's last error, once there is one."""
    service.send(in_ns(namespace))

    def last_error() -> str | None:
        error = service.destination(destination["id"])["status"]["last_error"]
        return error["message"] if error else None

    wait_until(lambda: last_error() is not None, what="the destination's error")
    assert receiver.requests == []
    message = last_error()
    assert message is not None
    return message


def test_a_destination_trusting_the_receivers_ca_delivers(
    service: Service, add_destination: AddDestination, tls_receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="tls",
        kind="http",
        url=tls_receiver.url + "/audit",
        namespaces=[namespace],
        tls={"ca_bundle": pem(SERVER_CA.cert_pem)},
    )
    assert tls_receiver.url.startswith("https://127.0.0.1:")
    delivered(service, tls_receiver, namespace)
    assert send_test(service, destination)["delivered"]


def test_a_ca_that_does_not_match_refuses_the_connection(
    service: Service, add_destination: AddDestination, tls_receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="wrong-ca",
        kind="http",
        url=tls_receiver.url,
        namespaces=[namespace],
        tls={"ca_bundle": pem(trustme.CA().cert_pem)},
    )
    message = refused(service, destination, tls_receiver, namespace)
    assert "certificate verification failed" in message, message
    result = send_test(service, destination)
    assert not result["delivered"] and "certificate verification failed" in result["message"], result
    # Nor does the system's store know the throwaway CA.
    plain = add_destination(name="system-store", kind="http", url=tls_receiver.url, namespaces=["none/such"])
    result = send_test(service, plain)
    assert not result["delivered"] and "certificate verification failed" in result["message"], result


def test_mutual_tls_with_the_client_certificate_and_without(
    service: Service, add_destination: AddDestination, mtls_receiver: Receiver, namespace: str
) -> None:
    with_cert = add_destination(
        name="mtls",
        kind="http",
        url=mtls_receiver.url,
        namespaces=[namespace],
        tls={
            "ca_bundle": pem(SERVER_CA.cert_pem),
            "client_certificate": "".join(pem(b) for b in CLIENT.cert_chain_pems),
            "client_key": pem(CLIENT.private_key_pem),
        },
    )
    assert with_cert["tls"]["client_key"] == "********"
    delivered(service, mtls_receiver, namespace)
    assert send_test(service, with_cert)["delivered"]

    without = add_destination(
        name="no-client-cert",
        kind="http",
        url=mtls_receiver.url,
        namespaces=["none/such"],
        tls={"ca_bundle": pem(SERVER_CA.cert_pem)},
    )
    result = send_test(service, without)
    assert not result["delivered"] and result["status_code"] is None, result
    # TLS 1.3 refuses after the handshake: the client reads "certificate required", or,
    # depending on which side is quicker, its write fails or the connection is reset.
    refusals = ("certificate required", "write", "reset by peer")
    assert any(words in result["message"] for words in refusals), result


def test_min_version_13_against_a_receiver_capped_at_12_fails(
    service: Service, add_destination: AddDestination, tls12_receiver: Receiver, namespace: str
) -> None:
    strict = add_destination(
        name="tls13",
        kind="http",
        url=tls12_receiver.url,
        namespaces=[namespace],
        tls={"ca_bundle": pem(SERVER_CA.cert_pem), "min_version": "1.3"},
    )
    message = refused(service, strict, tls12_receiver, namespace)
    assert "TLS handshake failed" in message, message
    # The default, 1.2, connects to it.
    default = add_destination(
        name="tls12",
        kind="http",
        url=tls12_receiver.url,
        namespaces=["none/such"],
        tls={"ca_bundle": pem(SERVER_CA.cert_pem)},
    )
    assert send_test(service, default)["delivered"]


def test_verification_off_connects_to_anything_and_says_so(
    service: Service, add_destination: AddDestination, tls_receiver: Receiver, namespace: str
) -> None:
    destination = add_destination(
        name="insecure", kind="http", url=tls_receiver.url, namespaces=[namespace], tls={"verify": False}
    )
    assert len(destination["warnings"]) == 1
    assert "verification is off" in destination["warnings"][0]
    assert service.destination(destination["id"])["warnings"] == destination["warnings"]
    delivered(service, tls_receiver, namespace)
