"""Secrets out of words: what a destination says back (an error body, a redirect's
`Location`, an exception's text) may repeat a secret it was sent, such as a Sumo Logic
source URL; before such text is stored, shown or logged, every secret in it is replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, unquote, urlsplit

HIDDEN = "********"
#: Shorter values are not searched for: too likely to match ordinary text.
MIN_SECRET_LENGTH = 6
#: Path segments of a secret URL this long are secret codes, hidden even on their own.
LONG_SEGMENT = 12


def secret_forms(url: str, url_is_secret: bool, others: Iterable[str | None]) -> tuple[str, ...]:
    """Every string to hide for a destination: its other secrets (token, secret header
    values), its URL's query and password, and, when the URL is itself a secret, the URL and
    its path, as sent and as percent-encoded or decoded."""
    found: list[str] = [value for value in others if value]
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if url_is_secret:
        found.append(url)
        if parts is not None:
            found += [parts.path, parts.netloc + parts.path]
            # The secret part alone (a Sumo source's code), however it is repeated.
            found += [segment for segment in parts.path.split("/") if len(segment) >= LONG_SEGMENT]
    if parts is not None:
        found += [parts.query, parts.password or ""]
    forms: set[str] = set()
    for value in found:
        if len(value) >= MIN_SECRET_LENGTH:
            forms.update((value, unquote(value), quote(value, safe="/:")))
    # The longest first, so a URL is replaced whole rather than around its path.
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    for secret in secrets:
        encoded = secret.encode()
        if encoded in data:
            data = data.replace(encoded, HIDDEN.encode())
    return data
