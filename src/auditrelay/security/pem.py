"""Checks of the PEM texts a destination's TLS settings hold, with messages an admin can act on.

They run when the settings are saved, so a destination never stores a CA bundle or a client
certificate its connections could not use. `ssl` would refuse the same texts later, at the
first connection, with OpenSSL's terse errors; `cryptography` says what is wrong now.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

PRIVATE_KEY_MARK = "PRIVATE KEY-----"


def check_certificates(pem: str, what: str) -> str:
    """`pem` holds one or more PEM certificates and no private key (the text is shown in
    answers, so a key pasted by mistake must not be kept); ValueError otherwise."""
    if PRIVATE_KEY_MARK in pem:
        raise ValueError(f"{what} holds a private key; give only certificates here")
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise ValueError(f"{what} must be PEM certificates ('-----BEGIN CERTIFICATE-----' ...)") from None
    if not certificates:  # pragma: no cover - cryptography refuses an empty list itself
        raise ValueError(f"{what} holds no certificate")
    return pem


def check_private_key(pem: str) -> str:
    """`pem` is one unencrypted PEM private key; ValueError otherwise (never echoing it)."""
    try:
        serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise ValueError("the client key is encrypted; give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(
            "the client key must be one PEM private key ('-----BEGIN PRIVATE KEY-----' ...)"
        ) from None
    return pem


def key_matches_certificate(certificate_pem: str, key_pem: str) -> bool:
    """True when the key is the private half of the first certificate (the client's own;
    the ones after it are its chain)."""
    certificate = x509.load_pem_x509_certificates(certificate_pem.encode())[0]
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return certificate.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
