"""Signed deliveries, by the Standard Webhooks specification (https://www.standardwebhooks.com/).

Every request to a destination with a signing secret carries `webhook-id`, `webhook-timestamp`
(unix seconds) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
keyed with the bytes the `whsec_` secret encodes. During a rotation the header holds one
signature per secret, space-separated, so a receiver that knows either secret accepts it.

Secrets are strict: `whsec_` and the canonical, padded standard base64 of 24 to 64 random
bytes (the specification asks for at least 24). Anything else is refused rather than
guessed at, so what an admin pasted is what receivers verify with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
#: What an admin sends to have a new secret made (shown once, in that answer).
GENERATE = "generate"
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64
#: The bytes of a generated secret: 256 bits, as HMAC-SHA256's own block of security.
GENERATED_KEY_BYTES = 32
_SECRET = re.compile(r"whsec_(?P<key>(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?)")

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)


def signing_key(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret encodes; ValueError naming what is wrong otherwise."""
    match = _SECRET.fullmatch(secret)
    if match is None:
        raise ValueError(
            f"must be '{SECRET_PREFIX}' followed by standard base64 (with its '=' padding), "
            f"or '{GENERATE}' to have one made"
        )
    try:
        key = base64.b64decode(match["key"], validate=True)
    except binascii.Error as exc:  # pragma: no cover - the pattern admits only valid base64
        raise ValueError(f"is not valid base64 after '{SECRET_PREFIX}'") from exc
    if base64.b64encode(key).decode() != match["key"]:
        raise ValueError(f"is not canonical base64 after '{SECRET_PREFIX}'")
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"must encode {MIN_KEY_BYTES} to {MAX_KEY_BYTES} random bytes, not {len(key)}")
    return key


def new_signing_secret() -> str:
    """A fresh secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(GENERATED_KEY_BYTES)).decode()


def new_message_id() -> str:
    """A `webhook-id`: random, and without '.', which separates the signed parts."""
    return "msg_" + secrets.token_urlsafe(18)


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,` signature over exactly the bytes sent."""
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.digest(key, signed, hashlib.sha256)).decode()


def signature_headers(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a signed request, one signature per key (current key first)."""
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(signature(key, message_id, timestamp, body) for key in keys),
    }
