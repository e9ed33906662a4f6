"""The TLS side of a destination's connections: one `ssl.SSLContext` per destination.

A context is built once per sender (each delivery loop has one, and so do `/test` and the
dead-letter resend), never per request: loading a CA store and a key costs milliseconds,
and the client's connection pool reuses the context for every connection it opens. A
destination with the default settings shares one context, built on first use, so a
hundred destinations do not load the system's store a hundred times.

A CA bundle replaces the system's store (it does not add to it): a destination on a
private PKI then trusts its own CA and nothing else.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path

from auditrelay.model import TlsSettings
from auditrelay.security import key_matches_certificate

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
#: Said in the destination's answer when its connections do not check the server's certificate.
VERIFY_OFF_WARNING = (
    "TLS certificate verification is off: this destination's connections accept any "
    "certificate, so anyone on the network path can read and alter the events sent"
)

_default: ssl.SSLContext | None = None


class TlsSettingsError(ValueError):
    """The settings cannot make a context; `field` names the setting at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field} {message}")
        self.field = field
        self.message = message


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The client context for these settings (the shared one for the defaults)."""
    global _default
    if tls == TlsSettings():
        if _default is None:
            _default = _build(tls)
        return _default
    return _build(tls)


def tls_problems(tls: TlsSettings) -> list[tuple[str, str]]:
    """Why these settings cannot be used, as (field, message); empty when they can."""
    if tls == TlsSettings():
        return []  # the defaults always can: no need to load the system's store to know it
    if tls.client_key and not tls.client_certificate:
        return [("tls.client_certificate", "is required with a client key")]
    if tls.client_certificate and not tls.client_key:
        return [("tls.client_key", "is required with a client certificate")]
    if (
        tls.client_certificate
        and tls.client_key
        and not key_matches_certificate(tls.client_certificate, tls.client_key)
    ):
        return [("tls.client_key", "is not the key of the client certificate (the first one given)")]
    try:
        _build(tls)
    except TlsSettingsError as exc:
        return [(exc.field, exc.message)]
    return []


def tls_warnings(tls: TlsSettings) -> list[str]:
    """What the destination's answer warns of: an admin must not forget that `verify` is off."""
    return [] if tls.verify else [VERIFY_OFF_WARNING]


def _build(tls: TlsSettings) -> ssl.SSLContext:
    try:
        # With `cadata`, only those CAs are trusted; without, the system's store.
        context = (
            ssl.create_default_context(cadata=tls.ca_bundle)
            if tls.ca_bundle
            else ssl.create_default_context()
        )
    except ssl.SSLError as exc:
        raise TlsSettingsError("tls.ca_bundle", f"cannot be loaded: {exc.reason or exc}") from None
    context.minimum_version = VERSIONS[tls.min_version]
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.client_certificate and tls.client_key:
        _load_client_pair(context, tls.client_certificate, tls.client_key)
    return context


def _load_client_pair(context: ssl.SSLContext, certificate: str, key: str) -> None:
    """`ssl` loads a certificate chain from files only: the PEM texts go to a directory only
    this process may read, for as long as loading takes."""
    with tempfile.TemporaryDirectory(prefix="auditrelay-tls-") as directory:
        cert_file, key_file = Path(directory) / "client.pem", Path(directory) / "client.key"
        for path, text in ((cert_file, certificate), (key_file, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        try:
            # A key needing a passphrase fails here rather than prompting on a terminal.
            context.load_cert_chain(cert_file, key_file, password=_no_passphrase)
        except (ssl.SSLError, ValueError) as exc:
            raise TlsSettingsError("tls.client_key", f"cannot be used with the certificate: {exc}") from None


def _no_passphrase() -> bytes:
    raise ValueError("the client key is encrypted; give it without a passphrase")
