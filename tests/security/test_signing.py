"""Standard Webhooks signing: strict secrets, and signatures the published verifier accepts
(`standardwebhooks`, the specification's own Python library)."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from auditrelay.security import new_message_id, new_signing_secret, signature_headers, signing_key


def secret_of(n: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n))).decode()


@pytest.mark.parametrize("n", [24, 32, 48, 64])
def test_secrets_of_24_to_64_bytes_are_taken(n: int) -> None:
    assert signing_key(secret_of(n)) == bytes(range(n))


@pytest.mark.parametrize(
    "secret",
    [
        secret_of(23),
        secret_of(65),
        secret_of(32).removeprefix("whsec_"),
        "WHSEC_" + secret_of(32).removeprefix("whsec_"),
        secret_of(32).rstrip("="),  # padding left out
        secret_of(32) + "\n",  # a whole-string match: nothing after it
        " " + secret_of(32),
        secret_of(32)[:-2] + "B=",  # non-canonical: trailing bits set
        "whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(),  # url-safe alphabet
        "whsec_",
        "generate",
    ],
)
def test_anything_else_is_refused(secret: str) -> None:
    with pytest.raises(ValueError):
        signing_key(secret)


def test_generated_secrets_are_fresh_and_valid() -> None:
    first, second = new_signing_secret(), new_signing_secret()
    assert first != second
    assert len(signing_key(first)) == 32


def test_message_ids_hold_no_dot() -> None:
    ids = {new_message_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("msg_") and "." not in i for i in ids)


def test_the_published_verifier_accepts_each_of_two_signatures() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    body = b'{"action":"document.create","details":{"name":"caf\xc3\xa9"}}'
    headers = signature_headers([signing_key(new), signing_key(old)], "msg_1", int(time.time()), body)
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)
