"""A new token's secret, carried from the POST that made it to the page that shows it once.

Creating or rotating a token answers with a redirect (POST-redirect-GET: reloading the
page it lands on makes nothing again). The secret crosses that redirect in a cookie sealed
with the instance's secret key (`SecretBox`, Fernet: encrypted and authenticated), bound to
the session that made it, valid for a few minutes, scoped to `/admin/api-tokens`, and
deleted by the answer that shows it. Why a cookie and not the server's memory: the service
runs several worker processes (and nodes) behind one address, so the GET may reach another
process than the POST did; every process holds the same key. The secret is never in a URL
(nor in the access logs that record them), and the store keeps only its hash, as the API's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from auditrelay.security import SecretBox, SecretsUnreadable

COOKIE = "auditrelay_new_token"
PATH = "/admin/api-tokens"
#: How long the sealed secret may wait for the page that shows it.
LIFETIME_SECONDS = 300


@dataclass(frozen=True)
class NewSecret:
    token: str
    name: str
    #: "created" or "rotated".
    how: str


def _bound_to(session_cookie: str) -> str:
    return hashlib.sha256(session_cookie.encode()).hexdigest()[:32]


def seal(box: SecretBox, session_cookie: str, secret: NewSecret, now: float) -> str:
    sealed = box.seal(
        {
            "token": secret.token,
            "name": secret.name,
            "how": secret.how,
            "session": _bound_to(session_cookie),
            "until": now + LIFETIME_SECONDS,
        }
    )
    return sealed.decode("ascii")


def unseal(box: SecretBox, session_cookie: str, sealed: str, now: float) -> NewSecret | None:
    """The secret, if `sealed` is one this instance sealed for this session, still fresh;
    None otherwise (another session's, expired, tampered with, or sealed by another key)."""
    try:
        value = box.open(sealed.encode("ascii"))
    except (SecretsUnreadable, UnicodeEncodeError):
        return None
    if value.get("session") != _bound_to(session_cookie) or not now < float(value.get("until", 0)):
        return None
    return NewSecret(str(value["token"]), str(value["name"]), str(value["how"]))
